//! The media routes: `POST /v1/media` (the body streamed to the blob
//! store), `GET`/`HEAD /v1/media/{id}` and `/v1/media/{id}/thumbnail`
//! (streamed back, with one `Range`, an `ETag` and conditional requests),
//! and resumable uploads under `/v1/media/uploads`.

use std::num::NonZeroUsize;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use parley_engines::telemetry::emit;

use parley_schemas::ids::UserId;

use crate::auth::Caller;
use crate::edge::media::Stored;
use crate::edge::resumable::Chunked;
use crate::error::ApiError;
use crate::http::AppState;
use crate::internal_events::MediaServed;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/media", post(upload))
        .route("/v1/media/{id}", get(download))
        .route("/v1/media/{id}/thumbnail", get(thumbnail))
        .route("/v1/media/uploads", post(begin))
        .route("/v1/media/uploads/{id}", get(progress).put(chunk))
}

#[derive(serde::Deserialize)]
struct Begin {
    size: u64,
    #[serde(default)]
    mime: Option<String>,
}

async fn begin(
    State(s): State<AppState>,
    caller: Caller,
    crate::http::Body(b): crate::http::Body<Begin>,
) -> Result<Response, ApiError> {
    let state = s
        .edge
        .media()
        .begin(caller.user, b.size, b.mime.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(state)).into_response())
}

async fn progress(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.edge.media().progress(caller.user, &id).await?).into_response())
}

/// `PUT` with `Content-Range: bytes START-END/TOTAL` (or `bytes
/// START-END/*`): 200 with where the upload stands, or 201 with the
/// stored media once the last byte is in.
async fn chunk(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (start, total) = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parley_schemas::media::parse_content_range)
        .ok_or_else(|| {
            ApiError::bad_request("a chunk needs Content-Range: bytes START-END/TOTAL")
        })?;
    let media = s.edge.media();
    match media
        .chunk(caller.user, &id, start, total, body.into_data_stream())
        .await?
    {
        Chunked::Partial(state) => Ok(Json(state).into_response()),
        Chunked::Done(stored) => Ok((StatusCode::CREATED, Json(stored)).into_response()),
    }
}

async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let stored = s
        .edge
        .media()
        .upload(caller.user, declared, length, body.into_data_stream())
        .await?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

async fn download(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let stored = s.edge.media().open(caller.user, &id, false).await?;
    serve(&s, stored, &headers, Some(caller.user)).await
}

async fn thumbnail(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let stored = s.edge.media().open(caller.user, &id, true).await?;
    serve(&s, stored, &headers, None).await
}

/// Types a browser may show in place; anything else is a download, so an
/// upload can never run as a page of this origin.
fn inline(mime: &str) -> bool {
    (mime.starts_with("image/") && mime != "image/svg+xml")
        || mime.starts_with("video/")
        || mime.starts_with("audio/")
}

/// Serves the bytes `stored` names. `fetcher`: the file itself (not its
/// thumbnail) for this user, whose fetch is recorded once its last byte
/// has gone out.
async fn serve(
    s: &AppState,
    stored: Stored,
    headers: &HeaderMap,
    fetcher: Option<UserId>,
) -> Result<Response, ApiError> {
    let thumbnail = fetcher.is_none();
    let Stored {
        media,
        record,
        key,
        size,
    } = stored;
    let etag = format!("\"{}{}\"", record.sha256, if thumbnail { "-t" } else { "" });
    let mime = if thumbnail {
        parley_schemas::media::THUMBNAIL_MIME
    } else {
        record.mime.as_str()
    };
    let mut out = HeaderMap::new();
    let mut set = |name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    set(header::ETAG, &etag);
    set(
        header::CACHE_CONTROL,
        "private, max-age=31536000, immutable",
    );
    set(header::ACCEPT_RANGES, "bytes");
    set(header::CONTENT_TYPE, mime);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if !inline(mime) {
        set(header::CONTENT_DISPOSITION, "attachment");
    }
    let matches = |h| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    };
    if matches(header::IF_NONE_MATCH) {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    // A range is honoured only while the ETag it names (if any) is current.
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| !headers.contains_key(header::IF_RANGE) || matches(header::IF_RANGE));
    let (status, range) = match range.map(|r| requested(r, size)) {
        Some(Ranged::One(r)) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        Some(Ranged::Unsatisfiable) => return Err(ApiError::range_not_satisfiable(size)),
        Some(Ranged::Ignored) | None => (StatusCode::OK, None),
    };
    let len = range.as_ref().map_or(size, |r| r.end - r.start);
    if let Some(r) = &range {
        set(
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", r.start, r.end - 1),
        );
    }
    set(header::CONTENT_LENGTH, &len.to_string());
    let to_the_end = range.as_ref().is_none_or(|r| r.end == size);
    let stream = s
        .edge
        .media()
        .blobs()
        .read(&key, range)
        .await?
        .ok_or_else(|| ApiError::not_found("no such media"))?;
    emit(MediaServed { bytes: len });
    let (edge, mut out_so_far) = (s.edge.clone(), 0u64);
    // Recorded as the last chunk goes out (hyper stops polling a body once
    // Content-Length bytes are out, so nothing after it would run).
    let stream = stream.then(move |chunk| {
        let last = chunk.as_ref().is_ok_and(|c| {
            out_so_far += c.len() as u64;
            out_so_far == len
        });
        let edge = edge.clone();
        async move {
            if let Some(user) = fetcher.filter(|_| last && to_the_end) {
                edge.media().fetched(user, media).await;
            }
            chunk.map_err(std::io::Error::other)
        }
    });
    let body = Body::from_stream(stream);
    Ok((status, out, body).into_response())
}

enum Ranged {
    One(std::ops::Range<u64>),
    Unsatisfiable,
    /// Malformed or several ranges: the whole blob is sent (RFC 9110
    /// lets a server ignore `Range`).
    Ignored,
}

fn requested(value: &str, size: u64) -> Ranged {
    use http_range_header::{parse_range_header_with_max_ranges, RangeUnsatisfiableError};
    let one = NonZeroUsize::new(1).expect("one");
    match parse_range_header_with_max_ranges(value, one).and_then(|p| p.validate(size)) {
        Ok(r) if r.len() == 1 => Ranged::One(*r[0].start()..*r[0].end() + 1),
        Ok(_) => Ranged::Ignored,
        Err(RangeUnsatisfiableError::Unsatisfiable) => Ranged::Unsatisfiable,
        Err(_) => Ranged::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str, size: u64) -> Option<std::ops::Range<u64>> {
        match requested(v, size) {
            Ranged::One(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(one("bytes=0-9", 100), Some(0..10));
        assert_eq!(one("bytes=90-", 100), Some(90..100));
        assert_eq!(one("bytes=-5", 100), Some(95..100));
        assert_eq!(one("bytes=95-200", 100), Some(95..100));
        assert!(matches!(
            requested("bytes=100-", 100),
            Ranged::Unsatisfiable
        ));
        assert!(matches!(requested("bytes=0-1,5-6", 100), Ranged::Ignored));
        assert!(matches!(requested("pages=1", 100), Ranged::Ignored));
        assert!(!inline("text/html") && !inline("image/svg+xml"));
        let content_range = parley_schemas::media::parse_content_range;
        assert_eq!(content_range("bytes 0-9/100"), Some((0, Some(100))));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, None)));
        assert_eq!(content_range("bytes 9-1/100"), None);
        assert_eq!(content_range("items 0-1/2"), None);
        assert!(inline("image/png") && inline("video/mp4"));
    }
}
