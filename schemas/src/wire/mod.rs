//! The client protocol of `shared/protocol.md`, as serde types.
//!
//! Field names and shapes follow the spec exactly; the tests below pin
//! them against JSON literals copied from it. Unknown fields are ignored (a
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
mod tests {
    use super::*;
    use crate::ids::{ConversationId, MessageId};
    use serde_json::{json, Value};

    fn to_value<T: Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap()
    }

    #[test]
    fn a_shared_msg_renders_as_serde_does() {
        let frame = MsgFrame {
            seq: Some(9),
            msg_id: MessageId(77),
            conversation_id: ConversationId::group(GroupId(5)),
            from: UserId(3),
            to: Recipient::Group(GroupId(5)),
            body: Body::Text("quote \" and \u{e9}".into()),
            ts: 1_700_000_000_000,
            extra: Default::default(),
        };
        let shared = SharedMsg::new(frame.clone());
        assert_eq!(shared.frame.seq, None);
        for seq in [Some(1), Some(u64::MAX), None] {
            let expected = serde_json::to_string(&ServerFrame::Msg(MsgFrame {
                seq,
                ..frame.clone()
            }))
            .unwrap();
            assert_eq!(shared.render(seq), expected);
        }
    }

    #[test]
    fn client_frames_parse_as_the_spec_writes_them() {
        let send: ClientFrame = serde_json::from_value(json!({
            "type": "send", "client_msg_id": "c1", "to": {"user": "42"},
            "body": {"text": "hi"}, "from": "999"
        }))
        .unwrap();
        assert_eq!(
            send,
            ClientFrame::Send(SendFrame {
                client_msg_id: "c1".into(),
                to: Recipient::User(UserId(42)),
                body: Body::Text("hi".into()),
                reply_to: None,
                forwarded: false,
            })
        );
        let media: ClientFrame = serde_json::from_value(json!({
            "type": "send", "client_msg_id": "c2", "to": {"group": "7"},
            "body": {"media": {"media_id": "m1", "caption": "look"}}
        }))
        .unwrap();
        assert!(matches!(
            media,
            ClientFrame::Send(SendFrame { to: Recipient::Group(GroupId(7)), body: Body::Media(Media { ref caption, mime: None, .. }), .. })
                if caption.as_deref() == Some("look")
        ));
        let receipt: ClientFrame = serde_json::from_value(json!({
            "type": "receipt", "conversation_id": "d:1:2", "msg_id": "123", "status": "read"
        }))
        .unwrap();
        assert_eq!(
            receipt,
            ClientFrame::Receipt(ReceiptFrame {
                conversation_id: ConversationId::direct(UserId(1), UserId(2)),
                msg_id: MessageId(123),
                status: ReceiptStatus::Read,
            })
        );
        let sync: ClientFrame = serde_json::from_value(json!({"type": "sync"})).unwrap();
        assert_eq!(sync, ClientFrame::Sync(SyncFrame { since: None }));
        let sync: ClientFrame =
            serde_json::from_value(json!({"type": "sync", "since": 5})).unwrap();
        assert_eq!(sync, ClientFrame::Sync(SyncFrame { since: Some(5) }));
        let received: ClientFrame =
            serde_json::from_value(json!({"type": "received", "seq": 9})).unwrap();
        assert_eq!(received, ClientFrame::Received(ReceivedFrame { seq: 9 }));
        assert!(serde_json::from_value::<ClientFrame>(json!({"type": "received"})).is_err());
        let hb: ClientFrame =
            serde_json::from_value(json!({"type": "heartbeat", "active": false})).unwrap();
        assert_eq!(hb, ClientFrame::Heartbeat(HeartbeatFrame { active: false }));
        let Body::Media(m) =
            serde_json::from_value::<Body>(json!({"media": {"media_id": "m1"}})).unwrap()
        else {
            panic!("media body")
        };
        assert_eq!(
            to_value(&Body::Media(m)),
            json!({"media": {"media_id": "m1"}}),
            "absent fields omitted"
        );
        // An e2e body comes back as it was sent; only an object is one.
        let e2e = json!({"e2e": {"v": 1, "ciphertexts": {"5:1": {"type": 0, "body": "AAE"}}}});
        let body: Body = serde_json::from_value(e2e.clone()).unwrap();
        assert!(matches!(body, Body::E2e(_)));
        assert_eq!(to_value(&body), e2e);
        assert!(serde_json::from_value::<Body>(json!({"e2e": "AAE"})).is_err());
        assert!(serde_json::from_value::<Body>(json!({"e2e": [1]})).is_err());
        let typing: ClientFrame =
            serde_json::from_value(json!({"type": "typing", "conversation_id": "g:3"})).unwrap();
        assert!(matches!(typing, ClientFrame::Typing(_)));
        let history: ClientFrame = serde_json::from_value(
            json!({"type": "history", "conversation_id": "g:3", "before": "99", "limit": 50}),
        )
        .unwrap();
        assert_eq!(
            history,
            ClientFrame::History(HistoryRequest {
                conversation_id: ConversationId::group(GroupId(3)),
                before: Some(MessageId(99)),
                limit: Some(50),
            })
        );
    }

    #[test]
    fn bad_client_frames_are_refused() {
        for bad in [
            json!({"type": "nope"}),
            json!({"client_msg_id": "c1"}),
            json!({"type": "send", "to": {"user": "1"}, "body": {"text": "x"}}),
            json!({"type": "send", "client_msg_id": "c", "to": {"user": 1}, "body": {"text": "x"}}),
            json!({"type": "send", "client_msg_id": "c", "to": {"bot": "1"}, "body": {"text": "x"}}),
            json!({"type": "send", "client_msg_id": "c", "to": {"user": "1"}, "body": {"html": "x"}}),
            json!({"type": "receipt", "conversation_id": "d:2:1", "msg_id": "1", "status": "read"}),
            json!({"type": "receipt", "conversation_id": "d:1:2", "msg_id": "1", "status": "seen"}),
            json!({"type": "heartbeat", "active": "yes"}),
            json!({"type": "sync", "since": -1}),
        ] {
            assert!(
                serde_json::from_value::<ClientFrame>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn server_frames_have_the_spec_shapes() {
        let ack = ServerFrame::Ack(Ack {
            client_msg_id: "c1".into(),
            msg_id: MessageId(77),
            conversation_id: ConversationId::direct(UserId(2), UserId(1)),
            ts: 1_700_000_000_000,
        });
        assert_eq!(
            to_value(&ack),
            json!({"type": "ack", "client_msg_id": "c1", "msg_id": "77",
                   "conversation_id": "d:1:2", "ts": 1_700_000_000_000u64})
        );
        let msg = ServerFrame::Msg(MsgFrame {
            seq: Some(3),
            msg_id: MessageId(77),
            conversation_id: ConversationId::direct(UserId(1), UserId(2)),
            from: UserId(1),
            to: Recipient::User(UserId(2)),
            body: Body::Text("hi".into()),
            ts: 5,
            extra: Default::default(),
        });
        assert_eq!(
            to_value(&msg),
            json!({"type": "msg", "seq": 3, "msg_id": "77", "conversation_id": "d:1:2",
                   "from": "1", "to": {"user": "2"}, "body": {"text": "hi"}, "ts": 5})
        );
        let status = ServerFrame::Status(StatusFrame {
            conversation_id: ConversationId::group(GroupId(9)),
            msg_id: MessageId(1),
            status: ReceiptStatus::Delivered,
            by: UserId(4),
            ts: 6,
            all: false,
        });
        assert_eq!(
            to_value(&status),
            json!({"type": "status", "conversation_id": "g:9", "msg_id": "1",
                   "status": "delivered", "by": "4", "ts": 6})
        );
        let ServerFrame::Status(mut all) = status else {
            unreachable!()
        };
        all.all = true;
        assert_eq!(
            to_value(&all)["all"],
            json!(true),
            "the aggregate says so; one member's status has no `all`"
        );
        let presence = ServerFrame::Presence(PresenceFrame {
            user_id: UserId(4),
            online: false,
            last_seen: Some(10),
        });
        assert_eq!(
            to_value(&presence),
            json!({"type": "presence", "user_id": "4", "online": false, "last_seen": 10})
        );
        let typing = ServerFrame::Typing(TypingNotice {
            conversation_id: ConversationId::group(GroupId(9)),
            user_id: UserId(4),
        });
        assert_eq!(
            to_value(&typing),
            json!({"type": "typing", "conversation_id": "g:9", "user_id": "4"})
        );
        let history = ServerFrame::History(HistoryPage {
            conversation_id: ConversationId::group(GroupId(9)),
            messages: vec![],
        });
        assert_eq!(
            to_value(&history),
            json!({"type": "history", "conversation_id": "g:9", "messages": []})
        );
        let err = ServerFrame::Error(ErrorFrame {
            code: ErrorCode::TooLarge,
            message: "text over 64 KiB".into(),
            reference: Some("c1".into()),
        });
        assert_eq!(
            to_value(&err),
            json!({"type": "error", "code": "too_large", "message": "text over 64 KiB", "ref": "c1"})
        );
    }

    #[test]
    fn error_codes_are_the_spec_strings() {
        for code in ErrorCode::ALL {
            assert_eq!(to_value(&code), json!(code.as_str()));
        }
        let names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "bad_request",
                "unauthorized",
                "forbidden",
                "not_found",
                "conflict",
                "too_large",
                "rate_limited",
                "unavailable",
                "internal"
            ]
        );
    }

    #[test]
    fn http_bodies_have_the_spec_shapes() {
        let s: CreateSession = serde_json::from_value(
            json!({"username": "alice", "password": "pw", "device_id": "3"}),
        )
        .unwrap();
        assert_eq!(s.device_id, Some(crate::ids::DeviceId(3)));
        assert_eq!(
            to_value(&Session {
                token: "t".into(),
                user_id: UserId(1),
                device_id: crate::ids::DeviceId(3),
                refresh_token: "r".into(),
                expires_in: 900,
            }),
            json!({"token": "t", "user_id": "1", "device_id": "3", "refresh_token": "r", "expires_in": 900})
        );
        assert_eq!(
            to_value(&UserCreated { user_id: UserId(1) }),
            json!({"user_id": "1"})
        );
        assert_eq!(
            to_value(&GroupCreated {
                group_id: GroupId(5),
                conversation_id: ConversationId::group(GroupId(5))
            }),
            json!({"group_id": "5", "conversation_id": "g:5"})
        );
        assert_eq!(
            to_value(&ErrorBody {
                code: ErrorCode::Conflict,
                message: "taken".into()
            }),
            json!({"code": "conflict", "message": "taken"})
        );
        let p = PresenceFrame {
            user_id: UserId(1),
            online: true,
            last_seen: None,
        };
        assert_eq!(
            to_value(&p),
            json!({"user_id": "1", "online": true, "last_seen": null})
        );
    }
}
