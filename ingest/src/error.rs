//! Every error a client can see, and the one place that turns it into an
//! HTTP response or an `error` frame (and counts it).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_engines::telemetry::emit;
use parley_engines::EngineError;
use parley_schemas::wire::{ErrorBody, ErrorCode, ErrorFrame, ServerFrame};

use crate::internal_events::{EngineFailed, ErrorAnswered};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// With `rate_limited`: when to try again (`Retry-After`).
    pub retry_after_secs: Option<u64>,
    /// A `Range` past the end of a blob of this size: answered 416 with
    /// `Content-Range: bytes */size` (code `bad_request`).
    pub unsatisfiable_size: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_secs: None,
            unsatisfiable_size: None,
        }
    }

    pub fn range_not_satisfiable(size: u64) -> Self {
        let mut e = Self::new(
            ErrorCode::BadRequest,
            format!("the range is outside the {size} bytes of this media"),
        );
        e.unsatisfiable_size = Some(size);
        e
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, m)
    }
    pub fn too_large(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, m)
    }

    /// The WebSocket form; `reference` is the `client_msg_id` it answers.
    /// Whether this says the caller may not (or no longer) see a thing:
    /// a listing skips such an entry instead of failing whole.
    pub fn is_no_access(&self) -> bool {
        matches!(self.code, ErrorCode::Forbidden | ErrorCode::NotFound)
    }

    pub fn into_frame(self, reference: Option<String>) -> ServerFrame {
        emit(ErrorAnswered { code: self.code });
        ServerFrame::Error(ErrorFrame {
            code: self.code,
            message: self.message,
            reference,
        })
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        // The client is told what kind of failure it was, never the
        // engine's words (paths, peer addresses); the log has those.
        emit(EngineFailed { error: &e });
        match e.retry() {
            parley_engines::Retry::Later => {
                ApiError::new(ErrorCode::Unavailable, "temporarily unavailable; try again")
            }
            parley_engines::Retry::Never => ApiError::new(ErrorCode::Internal, "internal error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        emit(ErrorAnswered { code: self.code });
        let status = match self.unsatisfiable_size {
            Some(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            None => StatusCode::from_u16(self.code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        let unsatisfiable = self.unsatisfiable_size;
        let retry_after = self.retry_after_secs;
        let mut response = (
            status,
            Json(ErrorBody {
                code: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(size) = unsatisfiable {
            let v = format!("bytes */{size}").parse().expect("a header value");
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_RANGE, v);
        }
        response
    }
}
