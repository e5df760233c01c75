//! Actions on messages: edit, delete (for everyone or for me) and react
//! (docs/protocol-additions.md, "Message actions").
//!
//! Each is sent as a `send` whose body names the message it acts on, in
//! the same conversation, so it is a message of its own to the pipeline:
//! it gets a `msg_id`, an `ack` once durable, and reaches every device
//! (of every member, or, deleted for me, of the sender) as a `msg` frame
//! in inbox order. Scrollback shows their effect on the target instead.
//!
//! The binary codec is positional: no field here may be skipped when
//! serializing.

use serde::{Deserialize, Serialize};

use crate::ids::{MessageId, UserId};

/// Longest edited text, as for any text.
pub use super::MAX_TEXT_BYTES as MAX_EDIT_BYTES;
/// An emoji is one grapheme; this bounds its bytes (a family with skin
/// tones is about 35).
pub const MAX_EMOJI_BYTES: usize = 64;
/// How long after it was sent a message may be acted on at all (replied
/// to, reacted to; edits and deletions have shorter windows): what the
/// message index keeps.
pub const ACTIONABLE_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// The default windows of edits and deletions for everyone (config
/// `messages.edit_window_s`, `messages.delete_window_s`).
pub const EDIT_WINDOW_MS: u64 = 15 * 60 * 1000;
pub const DELETE_WINDOW_MS: u64 = 48 * 60 * 60 * 1000;
/// How many quoted characters scrollback shows of a replied-to message.
pub const QUOTE_CHARS: usize = 120;

/// `body: {edit: {msg_id, text}}`: the sender's own text message now reads `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edit {
    pub msg_id: MessageId,
    pub text: String,
}

/// `body: {delete: {msg_id, for_me?}}`: gone for everyone (the sender,
/// or a group admin), or hidden on the caller's own devices (`for_me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    pub msg_id: MessageId,
    #[serde(default)]
    pub for_me: bool,
}

/// `body: {reaction: {msg_id, emoji}}`: the sender's one reaction to the
/// message; a new one replaces it, `""` removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub msg_id: MessageId,
    pub emoji: String,
}

/// One emoji's reactions on a message, in scrollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: u32,
    /// Who reacted so, oldest first.
    pub users: Vec<UserId>,
}

/// The start of a replied-to message, in scrollback: `text` is its text
/// or caption, cut to [`QUOTE_CHARS`]; empty for an encrypted body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub msg_id: MessageId,
    pub from: UserId,
    pub text: String,
}

/// Whether `emoji` is one emoji of the Unicode emoji list (skin tones
/// and sequences included), so a reaction is never free text.
pub fn is_emoji(emoji: &str) -> bool {
    emoji.len() <= MAX_EMOJI_BYTES && emojis::get(emoji).is_some()
}

#[cfg(test)]
mod tests {
    use super::is_emoji;

    #[test]
    fn one_emoji_only() {
        for ok in ["👍", "❤️", "👨‍👩‍👧‍👦", "👍🏽", "🇫🇷"] {
            assert!(is_emoji(ok), "{ok}");
        }
        for bad in ["", "a", "👍👍", ":)", "é", " 👍", "\u{0}"] {
            assert!(!is_emoji(bad), "{bad:?}");
        }
    }
}
