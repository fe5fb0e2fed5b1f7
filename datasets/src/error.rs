//! One error type for everything that reads data from disk: every message names the file.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but its contents are wrong (corrupt, malformed, out of range).
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// Not the data's fault: a panic caught in a loader worker (exit 1, not 2).
    #[error("{}: {message}", path.display())]
    Bug { path: PathBuf, message: String },
}

impl DataError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn invalid(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    pub fn bug(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        DataError::Bug {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// Whether the program failed rather than the data being bad.
    pub fn is_bug(&self) -> bool {
        matches!(self, DataError::Bug { .. })
    }

    /// The problem without the file's name (for an error type that adds the name itself).
    pub fn message(&self) -> String {
        match self {
            DataError::Io { source, .. } => source.to_string(),
            DataError::Invalid { message, .. } | DataError::Bug { message, .. } => message.clone(),
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DataError::Io { path, .. }
            | DataError::Invalid { path, .. }
            | DataError::Bug { path, .. } => path,
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
