//! The demo's data folder (`./data/demo/` unless `--data DIR`): created on first use with
//! owner-only permissions, it holds the SQLite sessions, the SQLite audit trail and its spool,
//! the development provider's per-start client secret (mode 0600), which the embedded config
//! names as a `file:` reference like any real secret, and the filled-in config itself (so
//! `portcullis audit query --config` can read the demo's trail). It knows nothing of HTTP, and it
//! never writes outside the folder it was given.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::secrets::Secret;

/// The data folder as an absolute path, so the URLs and references built from it do not
/// depend on how `--data` was spelled.
#[derive(Debug, Clone)]
pub struct DataFolder {
    dir: PathBuf,
}

impl DataFolder {
    /// Creates `dir` (and its parents) when missing; new folders are private to the owner.
    pub fn create(dir: &Path) -> anyhow::Result<DataFolder> {
        let dir =
            std::path::absolute(dir).with_context(|| format!("data folder {}", dir.display()))?;
        // The path lands inside TOML strings and sqlx URLs: keep it to plain printable text.
        match dir.to_str() {
            Some(text) if !text.chars().any(|c| c.is_control() || c == '?' || c == '#') => {}
            _ => anyhow::bail!(
                "data folder {}: use a path of printable characters without `?` or `#`",
                dir.display()
            ),
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
        Ok(DataFolder { dir })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `sqlite://` URL of a database file in the folder (created by its store when missing).
    pub fn sqlite_url(&self, file: &str) -> String {
        format!("sqlite://{}", self.dir.join(file).display())
    }

    /// Writes `secret` to `file` in the folder, readable by the owner only, replacing any
    /// previous value; returns the file's path for a `file:` reference.
    pub fn write_secret(&self, file: &str, secret: &Secret) -> anyhow::Result<PathBuf> {
        self.write_private(file, secret.expose())
    }

    /// Writes `bytes` to `file` in the folder, readable by the owner only, replacing any
    /// previous content; returns the file's path.
    pub fn write_private(&self, file: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(file);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        // `mode` applies only to a new file: tighten one left by an older run too.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        out.write_all(bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// `text` escaped for a TOML basic string (between double quotes).
pub fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_folders_privately_and_absolutely() {
        let temp = tempfile::tempdir().unwrap();
        let wanted = temp.path().join("a/b/demo");
        let folder = DataFolder::create(&wanted).unwrap();
        assert!(folder.path().is_absolute());
        assert!(wanted.is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&wanted).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // A second start reuses the folder.
        DataFolder::create(&wanted).unwrap();
    }

    #[test]
    fn secret_file_is_owner_only_and_replaced() {
        let temp = tempfile::tempdir().unwrap();
        let folder = DataFolder::create(temp.path()).unwrap();
        let path = folder
            .write_secret("s", &Secret::new("a-longer-old-value"))
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let again = folder.write_secret("s", &Secret::new("new")).unwrap();
        assert_eq!(path, again);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn sqlite_urls_are_absolute() {
        let temp = tempfile::tempdir().unwrap();
        let folder = DataFolder::create(temp.path()).unwrap();
        let url = folder.sqlite_url("sessions.db");
        assert!(url.starts_with("sqlite:///"), "{url}");
        assert!(url.ends_with("/sessions.db"));
    }

    #[test]
    fn awkward_paths_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        assert!(DataFolder::create(&temp.path().join("a?b")).is_err());
        assert!(DataFolder::create(&temp.path().join("a#b")).is_err());
        assert!(!temp.path().join("a?b").exists());
    }

    #[test]
    fn toml_escaping() {
        assert_eq!(toml_escape(r#"C:\x "y""#), r#"C:\\x \"y\""#);
    }
}
