//! WebSocket frames: client → server, tagged by `type`, and server →
//! client.

use serde::{Deserialize, Serialize};

use super::{Body, ErrorCode, ReceiptStatus, Recipient};
use crate::ids::{ConversationId, DeviceId, MessageId, UserId};

/// Client → server. One JSON object per text frame, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Send(SendFrame),
    Receipt(ReceiptFrame),
    Sync(SyncFrame),
    Received(ReceivedFrame),
    Heartbeat(HeartbeatFrame),
    Typing(TypingFrame),
    History(HistoryRequest),
}

/// Why a client's text frame is not a [`ClientFrame`]; `reference` is the
/// `client_msg_id` it carried, if one could be read, for the error's `ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRefused {
    pub reference: Option<String>,
    pub too_large: bool,
    pub reason: String,
}

/// Reads one client text frame: at most [`super::MAX_FRAME_BYTES`], JSON,
/// one of the frame types. Total: any text gives a frame or a refusal.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameRefused> {
    let refuse = |reference, too_large, reason| FrameRefused {
        reference,
        too_large,
        reason,
    };
    if text.len() > super::MAX_FRAME_BYTES {
        return Err(refuse(
            None,
            true,
            format!(
                "frame of {} bytes; the limit is {}",
                text.len(),
                super::MAX_FRAME_BYTES
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| refuse(None, false, format!("malformed JSON: {e}")))?;
    let reference = value
        .get("client_msg_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    serde_json::from_value(value)
        .map_err(|e| refuse(reference, false, format!("invalid frame: {e}")))
}

/// Also the body of `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFrame {
    pub client_msg_id: String,
    pub to: Recipient,
    pub body: Body,
    /// Parley's addition: a reply to this message of the same
    /// conversation, which the sender must be able to see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// Parley's addition: sent on from another chat (without naming its
    /// first sender); forwards are rate-limited.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
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

/// The device has stored every item of its inbox up to `seq`: the only
/// thing that moves its stored cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedFrame {
    pub seq: u64,
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
    /// Parley's addition: a device's one-time prekeys are running out.
    PrekeysLow(PrekeysLow),
    /// Parley's addition: inbox items up to `up_to_seq` are gone
    /// (`retention.undelivered_days`) and will not be sent.
    Expired(Expired),
    /// Parley's addition: how the user keeps a conversation (pinned,
    /// archived, muted) changed, from one of their devices; sent to all
    /// of them, so each shows the same.
    ConversationSettings(ConversationSettings),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSettings {
    pub conversation_id: ConversationId,
    pub pinned: bool,
    pub archived: bool,
    /// Muted until (ms; 0: for ever); absent when not muted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<u64>,
}

/// Sent after `sync`, before the backlog, when items this device had not
/// confirmed were deleted: no device confirmed them in time. The device
/// may confirm `up_to_seq` with `received` (it is told again otherwise),
/// and read what scrollback holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    pub up_to_seq: u64,
}

/// A device that uploaded keys has fewer than
/// [`LOW_PREKEYS`](crate::wire::LOW_PREKEYS) one-time prekeys left: it
/// should upload more. Sent to every device of the user (each checks
/// `device_id`), when a claim takes one and when the device connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrekeysLow {
    pub device_id: DeviceId,
    pub remaining: u32,
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
    /// Parley's additions: a reply's and a forward's marks, and in
    /// scrollback what later actions did to the message.
    #[serde(flatten)]
    pub extra: MsgExtra,
}

/// What a `msg` frame carries beyond the spec's fields; each is absent
/// when empty (docs/protocol-additions.md, "Message actions").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgExtra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// Scrollback: the text is an edit's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
    /// Scrollback: deleted for everyone; the body is empty text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Scrollback: the reactions, per emoji, most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<super::ReactionCount>,
    /// Scrollback: the start of the message replied to, if it is still there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Box<super::Quote>>,
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

    /// About the bytes it holds, for queues bounded in bytes.
    pub fn weight(&self) -> usize {
        2 * self.rest.len()
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
    /// Parley's addition: the page was cut short by its size
    /// ([`super::MAX_PAGE_BYTES`]), and more is there below its last
    /// message. Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub message: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}
