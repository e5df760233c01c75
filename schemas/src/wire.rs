//! The client protocol of `shared/protocol.md`, as serde types.
//!
//! Field names and shapes follow the spec exactly; the tests at the bottom
//! pin them against JSON literals copied from it. Unknown fields are
//! ignored (a client may send `from`; the edge takes the sender from the
//! token), so the protocol can grow compatibly.

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, GroupId, MessageId, UserId};

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

/// `body: {text}` or `body: {media: {media_id, mime?, caption?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    Text(String),
    Media(Media),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Media {
    pub media_id: String,
    #[serde(default)]
    pub mime: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
}

/// JSON omits absent optional fields; the binary codec is positional and
/// must write every field, so `Media` (which events carry) picks its form
/// by `is_human_readable`.
impl Serialize for Media {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            media_id: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            mime: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            caption: &'a Option<String>,
        }
        #[derive(Serialize)]
        struct Binary<'a> {
            media_id: &'a str,
            mime: &'a Option<String>,
            caption: &'a Option<String>,
        }
        let (media_id, mime, caption) = (self.media_id.as_str(), &self.mime, &self.caption);
        if s.is_human_readable() {
            Json {
                media_id,
                mime,
                caption,
            }
            .serialize(s)
        } else {
            Binary {
                media_id,
                mime,
                caption,
            }
            .serialize(s)
        }
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

// ---------------------------------------------------------------------------
// WebSocket frames

/// Client → server. One JSON object per text frame, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Send(SendFrame),
    Receipt(ReceiptFrame),
    Sync(SyncFrame),
    Heartbeat(HeartbeatFrame),
    Typing(TypingFrame),
    History(HistoryRequest),
}

/// Also the body of `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFrame {
    pub client_msg_id: String,
    pub to: Recipient,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptFrame {
    pub conversation_id: ConversationId,
    pub msg_id: MessageId,
    pub status: ReceiptStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatFrame {
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingFrame {
    pub conversation_id: ConversationId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    pub conversation_id: ConversationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Ack(Ack),
    Msg(MsgFrame),
    Status(StatusFrame),
    Presence(PresenceFrame),
    Typing(TypingNotice),
    History(HistoryPage),
    Error(ErrorFrame),
}

/// Also the answer of `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub client_msg_id: String,
    pub msg_id: MessageId,
    pub conversation_id: ConversationId,
    pub ts: u64,
}

/// A message as clients see it: in `msg` frames (with `seq`) and in
/// history pages (without).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub msg_id: MessageId,
    pub conversation_id: ConversationId,
    pub from: UserId,
    pub to: Recipient,
    pub body: Body,
    pub ts: u64,
}

/// A `msg` frame rendered to JSON once and sent to many inboxes, where
/// only `seq` differs: a group message goes to every member's sockets, and
/// serializing it once per socket was most of the fan-out's CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedMsg {
    /// The frame without `seq`.
    pub frame: MsgFrame,
    /// Its JSON after the opening `{"type":"msg",`.
    rest: String,
}

const MSG_OPEN: &str = r#"{"type":"msg","#;

impl SharedMsg {
    pub fn new(mut frame: MsgFrame) -> SharedMsg {
        frame.seq = None;
        let json =
            serde_json::to_string(&ServerFrame::Msg(frame.clone())).expect("msg frames serialize");
        let rest = json
            .strip_prefix(MSG_OPEN)
            .expect("the tag is serialized first")
            .to_owned();
        SharedMsg { frame, rest }
    }

    /// The frame's JSON text with `seq` (the first field, as serde writes it).
    pub fn render(&self, seq: Option<u64>) -> String {
        let mut s = String::with_capacity(MSG_OPEN.len() + 32 + self.rest.len());
        s.push_str(MSG_OPEN);
        if let Some(seq) = seq {
            use std::fmt::Write;
            let _ = write!(s, r#""seq":{seq},"#);
        }
        s.push_str(&self.rest);
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFrame {
    pub conversation_id: ConversationId,
    pub msg_id: MessageId,
    pub status: ReceiptStatus,
    pub by: UserId,
    pub ts: u64,
    /// In a group: every member has reached `status` (an addition to the
    /// spec's frame; absent means one member, `by`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// The `presence` frame, and the body of `GET /v1/users/{id}/presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceFrame {
    pub user_id: UserId,
    pub online: bool,
    /// `null` when privacy settings hide it.
    pub last_seen: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingNotice {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub conversation_id: ConversationId,
    pub messages: Vec<MsgFrame>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub message: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

// ---------------------------------------------------------------------------
// HTTP bodies

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreated {
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSession {
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<crate::ids::DeviceId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub user_id: UserId,
    pub device_id: crate::ids::DeviceId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub about: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfilePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroup {
    pub name: String,
    pub members: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreated {
    pub group_id: GroupId,
    pub conversation_id: ConversationId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMember {
    pub user_id: UserId,
}

/// Who may see a user's presence (online and last seen), as WhatsApp
/// offers it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    #[default]
    Everyone,
    /// Only the users in the owner's contact list.
    Contacts,
    Nobody,
}

impl Audience {
    /// Whether someone may see the owner's presence; `in_contacts`: they
    /// are in the owner's contact list. (The owner always sees their own.)
    pub fn allows(self, in_contacts: bool) -> bool {
        match self {
            Audience::Everyone => true,
            Audience::Contacts => in_contacts,
            Audience::Nobody => false,
        }
    }
}

/// `GET`/`PUT /v1/users/me/privacy` (an addition to the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privacy {
    pub presence: Audience,
}

/// `POST /v1/contacts` (an addition to the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddContact {
    pub user_id: UserId,
}

/// `GET /v1/contacts` (an addition to the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactList {
    pub contacts: Vec<Contact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub user_id: UserId,
    pub display_name: String,
}

/// `PATCH /v1/groups/{id}` (an addition to the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameGroup {
    pub name: String,
}

/// `GET /v1/groups/{id}`, to its members (an addition to the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group_id: GroupId,
    pub conversation_id: ConversationId,
    pub name: String,
    pub members: Vec<GroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub user_id: UserId,
    pub admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesPage {
    pub messages: Vec<MsgFrame>,
}

/// Messages in a scrollback page when the client names no `limit`.
pub const DEFAULT_PAGE: u32 = 50;

/// The answer of `GET /v1/conversations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationsPage {
    pub conversations: Vec<ConversationEntry>,
}

/// One conversation of the caller's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationEntry {
    pub conversation_id: ConversationId,
    pub last_message: MsgFrame,
    /// Messages from others after the caller's last `read` receipt.
    pub unread: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUploaded {
    pub media_id: String,
    pub sha256: String,
    pub size: u64,
    pub mime: String,
}

#[cfg(test)]
mod tests {
    use super::*;
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
                device_id: crate::ids::DeviceId(3)
            }),
            json!({"token": "t", "user_id": "1", "device_id": "3"})
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
