//! The one error type of this crate, with the retry hint callers need.

use parley_engines::{EngineError, Retry};

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("no query named {0:?}; `parley analytics` lists them")]
    UnknownQuery(String),
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl AnalyticsError {
    pub fn retry(&self) -> Retry {
        match self {
            AnalyticsError::ClickHouse(
                clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut,
            ) => Retry::Later,
            AnalyticsError::Engine(e) => e.retry(),
            _ => Retry::Never,
        }
    }
}
