//! Secret references and secret values. A reference (`env:NAME`, `file:PATH`,
//! `aws-sm:SECRET_ID[#json_key]`) is parsed with the config; the value is fetched only when
//! needed and held in [`Secret`], whose `Debug` and `Display` print `[redacted]`. Nothing here
//! logs a value.

use std::fmt;
use std::path::PathBuf;

/// Why a secret could not be fetched. Names the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `env:NAME` with NAME unset.
    #[error("env:{name}: environment variable {name} is not set")]
    EnvMissing { name: String },
    /// The reference resolved to nothing.
    #[error("{reference}: the secret is empty")]
    Empty { reference: String },
    /// `file:PATH` could not be read.
    #[error("file:{}: cannot read secret file: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A source this release cannot fetch from.
    #[error("{reference}: {what}")]
    Unsupported {
        reference: String,
        what: &'static str,
    },
}

/// Where a secret lives. Parsed from the config; resolving it is a separate, fallible step.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`: an environment variable.
    Env(String),
    /// `file:PATH`: a file's whole content (a trailing newline is kept for PEM, trimmed by
    /// callers that want a single-line value).
    File(PathBuf),
    /// `aws-sm:SECRET_ID` or `aws-sm:SECRET_ID#json_key`: AWS Secrets Manager (resolved in a
    /// later release; parsing works now).
    AwsSm { id: String, key: Option<String> },
}

impl fmt::Debug for SecretRef {
    // A reference is not secret, but print it the way users wrote it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
            SecretRef::AwsSm { id, key: None } => write!(f, "aws-sm:{id}"),
            SecretRef::AwsSm { id, key: Some(k) } => write!(f, "aws-sm:{id}#{k}"),
        }
    }
}

impl SecretRef {
    /// Parses `env:NAME`, `file:PATH`, `aws-sm:SECRET_ID` or `aws-sm:SECRET_ID#json_key`.
    /// Errors never repeat the input: a mistyped reference may be the secret itself.
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        if let Some(name) = s.strip_prefix("env:") {
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(
                    "env: needs a variable name of letters, digits and `_`, e.g. \"env:OKTA_SECRET\""
                        .into(),
                );
            }
            return Ok(SecretRef::Env(name.to_owned()));
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() || path.contains('\0') {
                return Err("file: needs a path, e.g. \"file:/etc/portcullis/key.pem\"".into());
            }
            return Ok(SecretRef::File(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("aws-sm:") {
            let (id, key) = match rest.split_once('#') {
                Some((id, key)) => (id, Some(key)),
                None => (rest, None),
            };
            if id.is_empty() {
                return Err("aws-sm: needs a secret id, e.g. \"aws-sm:portcullis/okta\"".into());
            }
            if key.is_some_and(str::is_empty) {
                return Err(
                    "aws-sm: a `#` must be followed by a JSON key, e.g. \"aws-sm:portcullis/okta#client_secret\""
                        .into(),
                );
            }
            return Ok(SecretRef::AwsSm {
                id: id.to_owned(),
                key: key.map(str::to_owned),
            });
        }
        Err(
            "not a secret reference: secrets are never written into the config; use \"env:NAME\" \
             or \"file:PATH\" (or \"aws-sm:SECRET_ID[#key]\")"
                .into(),
        )
    }

    /// Fetches the value. `env:` and `file:` work now; `aws-sm:` answers
    /// [`SecretError::Unsupported`] until the AWS client arrives.
    pub async fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretRef::Env(name) => match std::env::var_os(name) {
                Some(v) => v.into_encoded_bytes(),
                None => return Err(SecretError::EnvMissing { name: name.clone() }),
            },
            SecretRef::File(path) => {
                tokio::fs::read(path)
                    .await
                    .map_err(|source| SecretError::File {
                        path: path.clone(),
                        source,
                    })?
            }
            SecretRef::AwsSm { .. } => {
                return Err(SecretError::Unsupported {
                    reference: self.to_string(),
                    what: "aws-sm secrets are resolved by a later release",
                });
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty {
                reference: self.to_string(),
            });
        }
        Ok(Secret(value))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A secret value. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Secret(value.into())
    }

    /// The raw bytes. Call sites are the audit points for secret use.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_source() {
        assert_eq!(
            SecretRef::parse("env:OKTA_SECRET"),
            Ok(SecretRef::Env("OKTA_SECRET".into()))
        );
        assert_eq!(
            SecretRef::parse("file:certs/gate.pem"),
            Ok(SecretRef::File(PathBuf::from("certs/gate.pem")))
        );
        assert_eq!(
            SecretRef::parse("aws-sm:portcullis/okta"),
            Ok(SecretRef::AwsSm {
                id: "portcullis/okta".into(),
                key: None
            })
        );
        assert_eq!(
            SecretRef::parse("aws-sm:portcullis/okta#client_secret"),
            Ok(SecretRef::AwsSm {
                id: "portcullis/okta".into(),
                key: Some("client_secret".into())
            })
        );
    }

    #[test]
    fn prints_as_written() {
        for text in ["env:A_B", "file:/etc/x.pem", "aws-sm:a/b", "aws-sm:a/b#k"] {
            let parsed = SecretRef::parse(text).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(format!("{parsed:?}"), text);
        }
    }

    #[test]
    fn refuses_literals_without_echoing_them() {
        let err = SecretRef::parse("hunter2-super-secret").unwrap_err();
        assert!(
            err.contains("env:NAME") && err.contains("file:PATH"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = SecretRef::parse("vault:hunter2").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn refuses_incomplete_references() {
        for bad in [
            "env:",
            "env:HAS SPACE",
            "file:",
            "aws-sm:",
            "aws-sm:#key",
            "aws-sm:id#",
            "ENV:X",
        ] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), b"hunter2");
    }

    #[tokio::test]
    async fn resolves_env() {
        // Edition 2024 makes `set_var` unsafe (and racy across tests): read PATH, which
        // every test environment has, and a name nothing sets.
        let name = "PORTCULLIS_TEST_SECRET_NEVER_SET";
        let value = std::env::var("PATH").unwrap();
        let secret = SecretRef::Env("PATH".into()).resolve().await.unwrap();
        assert_eq!(secret.expose(), value.as_bytes());

        let err = SecretRef::Env(name.into()).resolve().await.unwrap_err();
        assert!(matches!(err, SecretError::EnvMissing { .. }));
        assert_eq!(
            err.to_string(),
            format!("env:{name}: environment variable {name} is not set")
        );
    }

    #[tokio::test]
    async fn resolves_files_and_names_the_path_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "-----BEGIN KEY-----\n").unwrap();
        let secret = SecretRef::File(path.clone()).resolve().await.unwrap();
        assert_eq!(secret.expose(), b"-----BEGIN KEY-----\n");

        let missing = dir.path().join("missing.pem");
        let err = SecretRef::File(missing.clone())
            .resolve()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        let err = SecretRef::File(empty).resolve().await.unwrap_err();
        assert!(matches!(err, SecretError::Empty { .. }), "{err}");
    }

    #[tokio::test]
    async fn aws_sm_is_not_yet_resolved() {
        let err = SecretRef::parse("aws-sm:portcullis/okta#client_secret")
            .unwrap()
            .resolve()
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::Unsupported { .. }));
        assert_eq!(
            err.to_string(),
            "aws-sm:portcullis/okta#client_secret: aws-sm secrets are resolved by a later release"
        );
    }
}
