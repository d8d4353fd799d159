//! The store's errors; RocksDB errors convert here and nowhere else.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("{path}: not a phosphor data directory ({reason})")]
    NotADataDir { path: String, reason: String },
    #[error("data directory format {found} is not supported by this build (expects {expected})")]
    Format { found: u32, expected: u32 },
    #[error("corrupt record under key {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Engine(e.into_string())
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
