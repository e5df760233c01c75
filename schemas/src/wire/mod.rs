//! The client protocol of `shared/protocol.md`, as serde types.
//!
//! Field names and shapes follow the spec exactly; the tests (`tests.rs`)
//! pin them against JSON literals copied from it. Unknown fields are ignored (a
//! client may send `from`; the edge takes the sender from the token), so
//! the protocol can grow compatibly.
//!
//! Layout: this file holds the limits and the types frames and bodies
//! share (recipients, bodies, receipt statuses, error codes); [`frames`]
//! the WebSocket frames, both ways; [`http`] the HTTP request and response
//! bodies. Everything is re-exported here, so `wire::X` names any of them.

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, UserId};

mod actions;
mod fold;
mod frames;
mod http;

pub use actions::*;
pub use fold::fold;
pub use frames::*;
pub use http::*;

/// Limits the spec sets on client input.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 64;
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// A scrollback page (its messages as JSON) is cut short past this, and
/// says `more`: 200 messages of the largest kind would otherwise make one
/// answer of tens of MiB, held whole by the connection that asked.
pub const MAX_PAGE_BYTES: usize = 4 * MAX_FRAME_BYTES;
/// How long a resend of a `client_msg_id` maps to its first `msg_id`;
/// later, the same id is a new message. Long enough for any client's retry
/// after a reconnect.
pub const RESEND_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

/// `to: {user: id}` or `to: {group: id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipient {
    User(UserId),
    Group(GroupId),
}

/// An `e2e` body's limit, as its compact JSON: one ciphertext per
/// recipient device fits a large group's worth of devices.
pub const MAX_E2E_BYTES: usize = 256 * 1024;

/// `body: {text}`, `body: {media: {media_id, mime?, caption?}}` or
/// `body: {e2e: {...}}`. Variants are only ever appended: the binary codec
/// numbers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    Text(String),
    Media(Media),
    E2e(E2e),
    /// Actions on an earlier message ([`actions`]).
    Edit(Edit),
    Delete(Delete),
    Reaction(Reaction),
}

impl Body {
    /// The message an action acts on; `None` for content.
    pub fn target(&self) -> Option<crate::ids::MessageId> {
        match self {
            Body::Edit(e) => Some(e.msg_id),
            Body::Delete(d) => Some(d.msg_id),
            Body::Reaction(r) => Some(r.msg_id),
            Body::Text(_) | Body::Media(_) | Body::E2e(_) => None,
        }
    }

    /// An edit, delete or reaction rather than content of its own: no
    /// ticks, no unread count, no notification, not the last message of
    /// a conversation list.
    pub fn is_action(&self) -> bool {
        self.target().is_some()
    }

    /// A short name for logs, history rows and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Text(_) => "text",
            Body::Media(_) => "media",
            Body::E2e(_) => "e2e",
            Body::Edit(_) => "edit",
            Body::Delete(d) if d.for_me => "hide",
            Body::Delete(_) => "delete",
            Body::Reaction(_) => "reaction",
        }
    }
}

/// An end-to-end encrypted body: a JSON object the clients made, opaque to
/// the server, which checks only that it is an object and its size
/// ([`MAX_E2E_BYTES`]). Parley's SDK puts one ciphertext per recipient
/// device in it (docs/protocol-additions.md, "End-to-end encryption").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct E2e(pub serde_json::Map<String, serde_json::Value>);

impl E2e {
    /// The size the limit applies to: its compact JSON.
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(&self.0).map_or(usize::MAX, |v| v.len())
    }
}

impl Serialize for E2e {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.0.serialize(s)
        } else {
            // Binary formats cannot carry a self-describing value: the
            // object travels as its JSON text.
            let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
            text.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for E2e {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return serde_json::Map::deserialize(d).map(E2e);
        }
        let text = String::deserialize(d)?;
        serde_json::from_str(&text)
            .map(E2e)
            .map_err(serde::de::Error::custom)
    }
}

/// A media body. `media_id`, `mime` and `caption` are the spec's; the
/// server adds the file's size, and the image's size and whether a
/// thumbnail exists when it knows them at send
/// (docs/protocol-additions.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Media {
    pub media_id: String,
    pub mime: Option<String>,
    pub caption: Option<String>,
    /// Bytes.
    pub size: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `Some(true)` once `GET /v1/media/{id}/thumbnail` has one.
    pub thumbnail: Option<bool>,
}

/// JSON omits absent optional fields and ignores unknown ones; the binary
/// codec is positional and writes every field. Envelope version 1 wrote
/// only the first three, and still decodes ([`crate::codec::layout`]).
#[derive(Serialize, Deserialize)]
struct MediaJson {
    media_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thumbnail: Option<bool>,
}

type MediaV1 = (String, Option<String>, Option<String>);
type MediaV2 = (
    String,
    Option<String>,
    Option<String>,
    Option<u64>,
    Option<u32>,
    Option<u32>,
    Option<bool>,
);

impl Serialize for Media {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let m = self.clone();
            MediaJson {
                media_id: m.media_id,
                mime: m.mime,
                caption: m.caption,
                size: m.size,
                width: m.width,
                height: m.height,
                thumbnail: m.thumbnail,
            }
            .serialize(s)
        } else if crate::codec::layout() < 2 {
            // `MediaV1`, borrowed.
            (&self.media_id, &self.mime, &self.caption).serialize(s)
        } else {
            // The same layout as `MediaV2`, borrowed.
            (
                &self.media_id,
                &self.mime,
                &self.caption,
                &self.size,
                &self.width,
                &self.height,
                &self.thumbnail,
            )
                .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Media {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let j = MediaJson::deserialize(d)?;
            return Ok(Media {
                media_id: j.media_id,
                mime: j.mime,
                caption: j.caption,
                size: j.size,
                width: j.width,
                height: j.height,
                thumbnail: j.thumbnail,
            });
        }
        if crate::codec::layout() < 2 {
            let (media_id, mime, caption) = MediaV1::deserialize(d)?;
            return Ok(Media {
                media_id,
                mime,
                caption,
                ..Media::default()
            });
        }
        let (media_id, mime, caption, size, width, height, thumbnail) = MediaV2::deserialize(d)?;
        Ok(Media {
            media_id,
            mime,
            caption,
            size,
            width,
            height,
            thumbnail,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    Delivered,
    Read,
}

/// Error codes shared by HTTP and WebSocket errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooLarge,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The spec's string, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// `{"code": "...", "message": "..."}`: the HTTP error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

#[cfg(test)]
mod tests;
