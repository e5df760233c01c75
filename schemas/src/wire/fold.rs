//! Messages with later actions folded in: a page of messages, and the
//! edits, deletions, hides and reactions on them, become the frames a
//! client shows (docs/protocol-additions.md, "Message actions"). The edge
//! folds scrollback with it; the SDK folds what it stored. Pure, so the
//! rules are tested without a store.

use std::collections::HashMap;

use super::{Body, MsgFrame, Quote, ReactionCount, QUOTE_CHARS};
use crate::ids::{MessageId, UserId};

/// `page` (in any order, kept) as `viewer` sees it given `actions` (on
/// any of its messages, oldest first) and the messages its replies quote.
/// Messages the viewer hid are left out; so are actions in `page`.
pub fn fold(
    viewer: UserId,
    page: &[MsgFrame],
    actions: &[MsgFrame],
    quoted: &[MsgFrame],
) -> Vec<MsgFrame> {
    let mut on: HashMap<MessageId, Vec<&MsgFrame>> = HashMap::new();
    for a in actions {
        if let Some(t) = a.body.target() {
            on.entry(t).or_default().push(a);
        }
    }
    let quotes: HashMap<MessageId, &MsgFrame> =
        page.iter().chain(quoted).map(|m| (m.msg_id, m)).collect();
    let mut out = Vec::with_capacity(page.len());
    for m in page.iter().filter(|m| !m.body.is_action()) {
        let acts = on.get(&m.msg_id).map(Vec::as_slice).unwrap_or_default();
        let hidden = acts
            .iter()
            .any(|a| a.from == viewer && matches!(&a.body, Body::Delete(d) if d.for_me));
        if hidden {
            continue;
        }
        let mut f = m.clone();
        // The edge let only the sender (or a group admin) delete.
        f.extra.deleted = acts
            .iter()
            .any(|a| matches!(&a.body, Body::Delete(d) if !d.for_me));
        if f.extra.deleted {
            f.body = Body::Text(String::new());
        } else if let Some(text) = acts.iter().rev().find_map(|a| match &a.body {
            Body::Edit(e) if a.from == m.from => Some(&e.text),
            _ => None,
        }) {
            f.body = Body::Text(text.clone());
            f.extra.edited = true;
        }
        if !f.extra.deleted {
            f.extra.reactions = reactions(acts);
            f.extra.quote = m
                .extra
                .reply_to
                .and_then(|r| quotes.get(&r))
                .map(|q| Box::new(quote(q)));
        }
        out.push(f);
    }
    out
}

/// Each user's latest reaction counts (an empty one removed theirs),
/// grouped by emoji, most first, then by who reacted first.
fn reactions(acts: &[&MsgFrame]) -> Vec<ReactionCount> {
    let mut latest: Vec<(UserId, &str)> = Vec::new();
    for a in acts {
        if let Body::Reaction(r) = &a.body {
            latest.retain(|(u, _)| *u != a.from);
            if !r.emoji.is_empty() {
                latest.push((a.from, &r.emoji));
            }
        }
    }
    let mut counts: Vec<ReactionCount> = Vec::new();
    for (user, emoji) in latest {
        match counts.iter_mut().find(|c| c.emoji == emoji) {
            Some(c) => {
                c.count += 1;
                c.users.push(user);
            }
            None => counts.push(ReactionCount {
                emoji: emoji.to_owned(),
                count: 1,
                users: vec![user],
            }),
        }
    }
    // Stable: equal counts keep the order of their first reaction.
    counts.sort_by_key(|c| std::cmp::Reverse(c.count));
    counts
}

fn quote(m: &MsgFrame) -> Quote {
    let text = match &m.body {
        Body::Text(t) => t.as_str(),
        Body::Media(media) => media.caption.as_deref().unwrap_or_default(),
        _ => "",
    };
    Quote {
        msg_id: m.msg_id,
        from: m.from,
        text: text.chars().take(QUOTE_CHARS).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConversationId;
    use crate::wire::{Delete, Edit, MsgExtra, Reaction, Recipient};

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);

    fn msg(id: u64, from: UserId, body: Body) -> MsgFrame {
        MsgFrame {
            seq: None,
            msg_id: MessageId(id),
            conversation_id: ConversationId::direct(A, B),
            from,
            to: Recipient::User(if from == A { B } else { A }),
            body,
            ts: id,
            extra: MsgExtra::default(),
        }
    }

    fn text(id: u64, from: UserId, t: &str) -> MsgFrame {
        msg(id, from, Body::Text(t.into()))
    }

    fn react(id: u64, from: UserId, on: u64, emoji: &str) -> MsgFrame {
        let r = Reaction {
            msg_id: MessageId(on),
            emoji: emoji.into(),
        };
        msg(id, from, Body::Reaction(r))
    }

    fn edit(id: u64, from: UserId, on: u64, t: &str) -> MsgFrame {
        let e = Edit {
            msg_id: MessageId(on),
            text: t.into(),
        };
        msg(id, from, Body::Edit(e))
    }

    fn delete(id: u64, from: UserId, on: u64, for_me: bool) -> MsgFrame {
        let d = Delete {
            msg_id: MessageId(on),
            for_me,
        };
        msg(id, from, Body::Delete(d))
    }

    #[test]
    fn edits_take_the_last_text_of_the_sender() {
        let page = [text(10, A, "hi")];
        let acts = [
            edit(11, A, 10, "hello"),
            edit(12, B, 10, "forged"),
            edit(13, A, 10, "hey"),
        ];
        let f = &fold(B, &page, &acts, &[])[0];
        assert_eq!(f.body, Body::Text("hey".into()));
        assert!(f.extra.edited);
        let plain = &fold(B, &page, &[], &[])[0];
        assert!(!plain.extra.edited);
    }

    #[test]
    fn deleted_for_everyone_shows_no_content_and_hidden_only_for_the_hider() {
        let page = [text(20, A, "second"), text(10, A, "first")];
        let acts = [
            edit(11, A, 10, "edited"),
            react(12, B, 10, "👍"),
            delete(13, A, 10, false),
            delete(21, B, 20, true),
        ];
        let for_b = fold(B, &page, &acts, &[]);
        assert_eq!(for_b.len(), 1, "B hid 20");
        assert!(for_b[0].extra.deleted);
        assert_eq!(for_b[0].body, Body::Text(String::new()));
        assert!(!for_b[0].extra.edited && for_b[0].extra.reactions.is_empty());
        let for_a = fold(A, &page, &acts, &[]);
        assert_eq!(for_a.len(), 2, "A did not hide it");
    }

    #[test]
    fn one_reaction_per_user_counted_per_emoji() {
        let page = [text(10, A, "x")];
        let acts = [
            react(11, B, 10, "👍"),
            react(12, C, 10, "❤️"),
            react(13, A, 10, "❤️"),
            react(14, B, 10, "❤️"),
            react(15, C, 10, ""),
            react(16, C, 10, "😂"),
        ];
        let f = &fold(A, &page, &acts, &[])[0];
        let got: Vec<(&str, u32, Vec<UserId>)> = f
            .extra
            .reactions
            .iter()
            .map(|r| (r.emoji.as_str(), r.count, r.users.clone()))
            .collect();
        assert_eq!(got, vec![("❤️", 2, vec![A, B]), ("😂", 1, vec![C])]);
    }

    #[test]
    fn replies_quote_from_the_page_or_the_lookup() {
        let mut reply = text(30, B, "yes");
        reply.extra.reply_to = Some(MessageId(10));
        let mut far = text(31, B, "and that");
        far.extra.reply_to = Some(MessageId(5));
        let mut lost = text(32, B, "?");
        lost.extra.reply_to = Some(MessageId(4));
        let long = "é".repeat(500);
        let page = [lost, far, reply, text(10, A, "question?")];
        let quoted = [text(5, A, &long)];
        let out = fold(A, &page, &[], &quoted);
        assert_eq!(out[0].extra.quote, None, "not in the history: no quote");
        let q = out[1].extra.quote.as_ref().unwrap();
        assert_eq!((q.msg_id, q.from), (MessageId(5), A));
        assert_eq!(q.text.chars().count(), QUOTE_CHARS);
        assert_eq!(out[2].extra.quote.as_ref().unwrap().text, "question?");
        assert_eq!(out[2].extra.reply_to, Some(MessageId(10)));
    }
}
