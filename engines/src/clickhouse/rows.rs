//! The rows of the history tables as the `clickhouse` crate reads and
//! writes them, and how a message becomes a row and back.

use clickhouse::Row;
use parley_schemas::event::MessageSent;
use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::{Body, Delete, Edit, Media, Reaction, ReceiptStatus, Recipient};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(super) struct MessageRow {
    pub(super) msg_id: u64,
    pub(super) conversation: String,
    pub(super) sender: u64,
    pub(super) recipient: u64,
    pub(super) group_id: u64,
    pub(super) kind: String,
    pub(super) text: String,
    pub(super) media_id: String,
    pub(super) mime: String,
    pub(super) caption: String,
    pub(super) media_size: u64,
    pub(super) width: u32,
    pub(super) height: u32,
    /// 0 unknown, 1 no, 2 yes.
    pub(super) thumbnail: u8,
    pub(super) client_msg_id: String,
    pub(super) from_device: u64,
    pub(super) ts: u64,
    /// The message an action (edit, delete, hide, reaction) acts on; 0
    /// for content.
    pub(super) target: u64,
    pub(super) reply_to: u64,
    pub(super) forwarded: u8,
}

impl From<&MessageSent> for MessageRow {
    fn from(m: &MessageSent) -> Self {
        let (recipient, group_id) = match m.to {
            Recipient::User(u) => (u.0, 0),
            Recipient::Group(g) => (0, g.0),
        };
        let none = Media::default();
        let (text, media) = match &m.body {
            Body::Text(t) => (t.clone(), &none),
            Body::Media(media) => (String::new(), media),
            // The ciphertexts, for scrollback: opaque, never content.
            Body::E2e(e2e) => (serde_json::Value::Object(e2e.0.clone()).to_string(), &none),
            Body::Edit(e) => (e.text.clone(), &none),
            Body::Reaction(r) => (r.emoji.clone(), &none),
            Body::Delete(_) => (String::new(), &none),
        };
        let kind = m.body.kind();
        MessageRow {
            msg_id: m.msg_id.0,
            conversation: m.conversation.to_string(),
            sender: m.from.0,
            recipient,
            group_id,
            kind: kind.to_owned(),
            text,
            media_id: media.media_id.clone(),
            mime: media.mime.clone().unwrap_or_default(),
            caption: media.caption.clone().unwrap_or_default(),
            media_size: media.size.unwrap_or_default(),
            width: media.width.unwrap_or_default(),
            height: media.height.unwrap_or_default(),
            thumbnail: media.thumbnail.map_or(0, |t| 1 + u8::from(t)),
            client_msg_id: m.client_msg_id.clone(),
            from_device: m.from_device.0,
            ts: m.ts,
            target: m.body.target().map_or(0, |t| t.0),
            reply_to: m.reply_to.map_or(0, |t| t.0),
            forwarded: m.forwarded.into(),
        }
    }
}

impl TryFrom<MessageRow> for MessageSent {
    type Error = EngineError;
    fn try_from(r: MessageRow) -> Result<Self> {
        let conversation: ConversationId = r.conversation.parse().map_err(|e| {
            EngineError::State(format!(
                "history: bad conversation {:?}: {e}",
                r.conversation
            ))
        })?;
        let to = if r.group_id != 0 {
            Recipient::Group(GroupId(r.group_id))
        } else {
            Recipient::User(UserId(r.recipient))
        };
        let some = |s: String| (!s.is_empty()).then_some(s);
        let body = match r.kind.as_str() {
            "media" => Body::Media(Media {
                media_id: r.media_id,
                mime: some(r.mime),
                caption: some(r.caption),
                size: (r.media_size > 0).then_some(r.media_size),
                width: (r.width > 0).then_some(r.width),
                height: (r.height > 0).then_some(r.height),
                thumbnail: (r.thumbnail > 0).then_some(r.thumbnail == 2),
            }),
            "e2e" => Body::E2e(serde_json::from_str(&r.text).map_err(|e| {
                EngineError::State(format!("history: bad e2e body of {}: {e}", r.msg_id))
            })?),
            "edit" => Body::Edit(Edit {
                msg_id: MessageId(r.target),
                text: r.text,
            }),
            "delete" | "hide" => Body::Delete(Delete {
                msg_id: MessageId(r.target),
                for_me: r.kind == "hide",
            }),
            "reaction" => Body::Reaction(Reaction {
                msg_id: MessageId(r.target),
                emoji: r.text,
            }),
            _ => Body::Text(r.text),
        };
        Ok(MessageSent {
            msg_id: MessageId(r.msg_id),
            conversation,
            from: UserId(r.sender),
            from_device: DeviceId(r.from_device),
            to,
            client_msg_id: r.client_msg_id,
            body,
            ts: r.ts,
            reply_to: (r.reply_to != 0).then_some(MessageId(r.reply_to)),
            forwarded: r.forwarded != 0,
        })
    }
}

#[derive(Debug, Row, Serialize)]
pub(super) struct ConversationRow {
    pub(super) user: u64,
    pub(super) conversation: String,
    pub(super) last_msg_id: u64,
}

#[derive(Debug, Row, Serialize)]
pub(super) struct HeadRow {
    pub(super) conversation: String,
    pub(super) last_msg_id: u64,
}

#[derive(Debug, Row, Serialize)]
pub(super) struct ReadMarkRow {
    pub(super) user: u64,
    pub(super) conversation: String,
    pub(super) up_to: u64,
    pub(super) ts: u64,
}

#[derive(Debug, Row, Serialize)]
pub(super) struct ReceiptRow {
    pub(super) msg_id: u64,
    pub(super) conversation: String,
    pub(super) sender: u64,
    pub(super) reader: u64,
    pub(super) status: &'static str,
    pub(super) sent_ts: u64,
    pub(super) ts: u64,
}

#[derive(Debug, Row, Serialize, Deserialize)]
pub(super) struct SessionRow {
    pub(super) user: u64,
    pub(super) start_ts: u64,
    pub(super) end_ts: u64,
    pub(super) active_beats: u64,
}

pub fn status_name(s: ReceiptStatus) -> &'static str {
    match s {
        ReceiptStatus::Delivered => "delivered",
        ReceiptStatus::Read => "read",
    }
}
