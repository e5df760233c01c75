//! The one error type of the client, with the hint callers need.

use parley_schemas::wire::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with the protocol's error.
    #[error("{code:?}: {message}")]
    Server { code: ErrorCode, message: String },
    #[error("the local store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("the network: {0}")]
    Http(#[from] reqwest::Error),
    #[error("not signed in")]
    SignedOut,
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// End-to-end encryption: no keys to encrypt with, a bad signature, a
    /// message this device cannot decrypt.
    #[error("end-to-end encryption: {0}")]
    Crypto(String),
}

impl ClientError {
    /// Whether the same call may succeed later (the network, a busy server).
    pub fn retry_later(&self) -> bool {
        match self {
            ClientError::Server { code, .. } => {
                matches!(code, ErrorCode::Unavailable | ErrorCode::RateLimited)
            }
            ClientError::Http(_) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
