//! The one error type of this crate, with the retry hint callers need.

use parley_engines::{EngineError, Retry};

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("no query named {0:?}; `parley analytics` lists them")]
    UnknownQuery(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl AnalyticsError {
    pub fn retry(&self) -> Retry {
        match self {
            AnalyticsError::Engine(e) => e.retry(),
            _ => Retry::Never,
        }
    }
}
