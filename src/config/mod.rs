//! Configuration: the TOML file types (`deny_unknown_fields`, `version = 1`) and their
//! conversion into the validated runtime [`Config`] of typed values. Every error is gathered,
//! each with its key path (`routes[2].upstream[0]: not an http(s) URL`), before failing.
//! Environment variables `PORTCULLIS__<KEY>__<KEY>` override any key. Loading has no side
//! effects: it reads the file and the environment, nothing else. Imports neither axum nor any
//! database crate.
//!
//! The pipeline: TOML text -> table -> `env` overrides -> version gate -> `file` types
//! (serde, with key paths) -> `convert` (server), `route`, `rule`, `time_window`, `later`
//! (sections not yet active) -> [`Config`].

mod audit;
mod convert;
mod duration;
mod env;
mod file;
mod later;
mod provider;
mod route;
mod rule;
mod session;
#[cfg(test)]
mod tests;
mod time_window;
mod token_issuer;
mod types;

pub use audit::{AuditConfig, AuditUrl, Durability, RedactAction, RedactConfig};
pub use duration::{parse_duration, parse_size};
pub use provider::{Preset, ProviderConfig};
pub use session::{SessionConfig, SessionStoreKind};
pub use token_issuer::{
    ALLOWED_ALGORITHMS, AssertionConfig, MAX_ASSERTION_LIFETIME, TokenIssuerConfig,
};
pub use types::*;

use std::fmt;
use std::path::Path;

/// One problem in the config, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `routes[2].upstream[0]` (empty for whole-file problems).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates a config file, applying `PORTCULLIS__*` overrides from the process
/// environment. A missing or unreadable file is one error naming the path.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            message: format!("cannot read config file {}: {e}", path.display()),
        }])
    })?;
    // `vars()` panics on a non-UTF-8 variable; such a variable cannot be an override anyway.
    let env = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    load_str(&text, env)
}

/// Validates config text with the given environment (`(name, value)` pairs; only
/// `PORTCULLIS__*` names are read).
pub fn load_str(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    let file = parse_file(text, env)?;
    convert::convert(file).map_err(ConfigErrors)
}

/// Text -> file types: TOML syntax, overrides, the version gate, then serde. Each stage's
/// errors stop the pipeline, because later stages would only repeat them in other words.
fn parse_file(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<file::FileConfig, ConfigErrors> {
    let whole_file = |message: String| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            message,
        }])
    };
    let mut root: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| whole_file(e.to_string().trim_end().to_owned()))?;
    let env_errors = env::apply_overrides(&mut root, env);
    if !env_errors.is_empty() {
        return Err(ConfigErrors(env_errors));
    }
    check_version(&root)?;
    serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: key_path(e.path()),
            // `message()` leaves out toml's own, less precise, "in `key`" suffix.
            message: e.inner().message().trim_end().to_owned(),
        }])
    })
}

/// Checked before the rest: a file of another version would only produce confusing
/// unknown-field errors.
fn check_version(root: &toml::Table) -> Result<(), ConfigErrors> {
    let message = match root.get("version") {
        Some(toml::Value::Integer(1)) => return Ok(()),
        None => "missing; add `version = 1` at the top of the file".to_owned(),
        Some(other) => format!("unsupported version {other}; this release reads version = 1"),
    };
    Err(ConfigErrors(vec![ConfigError {
        path: "version".into(),
        message,
    }]))
}

/// `routes[0].policy.allow[1]`: our spelling of a serde path.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}
