//! Secret references and secret values. A reference (`env:NAME`, `file:PATH`,
//! `aws-sm:SECRET_ID[#json_key]`) is parsed with the config; the value is fetched only when
//! needed and held in [`Secret`], whose `Debug` and `Display` print `[redacted]`. Nothing here
//! logs a value.

use std::fmt;
use std::path::PathBuf;

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

/// Why a secret could not be fetched. (Stub; the config work replaces it.)
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot resolve secret")]
    Unresolved,
}

impl SecretRef {
    /// Fetches the value. (Stub; the config work replaces it.)
    pub async fn resolve(&self) -> Result<Secret, SecretError> {
        Err(SecretError::Unresolved)
    }
}
