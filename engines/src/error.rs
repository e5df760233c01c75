//! The one error type of this crate, with the hint callers need: may the
//! same call succeed if tried again?

use std::io;

/// Whether retrying the failed call can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A passing condition (a timeout, a busy or restarting server).
    Later,
    /// The request itself is wrong, or the engine is in a state that only an
    /// operator can fix.
    Never,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    #[error("topic {topic:?} exists with {existing} partitions, not {requested}")]
    TopicMismatch {
        topic: String,
        existing: u32,
        requested: u32,
    },
    #[error("offset {requested} is outside [{start}, {end}] of {topic}/{partition}")]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        requested: u64,
        start: u64,
        end: u64,
    },
    #[error("invalid name {0:?}: use 1..=128 of [A-Za-z0-9._-]")]
    InvalidName(String),
    #[error("record of {size} bytes exceeds the limit of {limit}")]
    RecordTooLarge { size: usize, limit: usize },
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        path: String,
        position: u64,
        reason: String,
    },
    #[error("{0} takes no appends after a failed write (a full disk?); it mends itself once it can write again")]
    Poisoned(String),
    #[error("the engine is shut down")]
    Closed,
    #[error("record {topic}/{partition}@{offset} does not decode ({reason}): the partition waits for a build that reads it")]
    Undecodable {
        topic: String,
        partition: u32,
        offset: u64,
        reason: String,
    },
    #[error("state store error: {0}")]
    State(String),
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl EngineError {
    pub fn io(path: impl std::fmt::Display, source: io::Error) -> Self {
        EngineError::Io {
            path: path.to_string(),
            source,
        }
    }

    pub fn retry(&self) -> Retry {
        match self {
            EngineError::Io { source, .. } => match source.kind() {
                io::ErrorKind::Interrupted
                | io::ErrorKind::TimedOut
                | io::ErrorKind::WouldBlock => Retry::Later,
                _ => Retry::Never,
            },
            // A record of a newer build: readable once this node is upgraded.
            EngineError::Unavailable(_)
            | EngineError::Poisoned(_)
            | EngineError::Undecodable { .. } => Retry::Later,
            _ => Retry::Never,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Topic, partition and consumer-group names become file names and key
/// parts, so they are kept to a safe alphabet.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidName(name.to_owned()))
    }
}
