//! Compaction of the `accounts` topic, the log a lost state store is
//! rebuilt from: it is never trimmed, so without this it grows by every
//! refresh, profile change and contact toggle. Kafka's rule, by key: a
//! record goes once every consumer has passed it and a later record sets
//! everything it set. A rebuild from what stays ends where a rebuild from
//! everything would (docs/retention.md, "The accounts topic").
//!
//! The keys (per user unless said):
//! - `AccountCreated`: the account (id, name, password hash, name shown).
//!   Deletion appends a second one with the hash and name erased, so the
//!   first, hash and all, goes, while the id and the name stay taken.
//! - `DeviceAdded`: the user's device counter (ids only grow, so the last
//!   one is the counter).
//! - `DeviceSession`: that device's sign-in; profile changes: each field
//!   they set; `ContactChanged`, `BlockChanged`: that other user;
//!   `PrivacySet`: the setting.
//! - `MediaAdded`, `MediaDeleted`: the upload. A deletion left alone (its
//!   upload gone before it) goes too: a rebuild without either has no
//!   upload, as one with both.
//! - `AccountDeleted` stays for good (a tombstone); the user's profile,
//!   contact, block and privacy records before it go (what deletion
//!   erases: a rebuild erases what is left of them there, account or
//!   not), device and session records stay (deletion keeps those).
//! - Anything else stays.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use parley_engines::{EngineError, Log, ReadLimit, Result};
use parley_schemas::codec;
use parley_schemas::event::Event;
use parley_schemas::ids::{DeviceId, UserId};
use parley_schemas::media::MediaId;
use parley_schemas::{jobs, topics};

/// The consumers of `accounts`: a record goes only once both passed it.
pub const CONSUMERS: [&str; 2] = [jobs::ACCOUNTS, jobs::THUMBNAILS];

/// Records read per call while folding a partition.
const READ: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Account(UserId),
    Devices(UserId),
    Session(UserId, DeviceId),
    DisplayName(UserId),
    About(UserId),
    Avatar(UserId),
    Contact(UserId, UserId),
    Block(UserId, UserId),
    Privacy(UserId),
    Media(MediaId),
}

/// What one record sets, and how it may go.
enum Sets {
    /// Goes once later records set every key (none: it set nothing), or
    /// once `erasable`'s account is deleted after it.
    Keys {
        keys: Vec<Key>,
        erasable: Option<UserId>,
    },
    /// `MediaDeleted`: goes when superseded, or when alone.
    Tombstone(Key),
    /// Stays.
    Kept,
}

fn sets(event: &Event) -> Sets {
    let of = |user, keys: Vec<Key>| Sets::Keys {
        keys,
        erasable: Some(user),
    };
    match event {
        Event::AccountCreated(a) => Sets::Keys {
            keys: vec![Key::Account(a.user)],
            erasable: None,
        },
        // Deletion leaves device counters and sessions as they are, so
        // their records outlive it.
        Event::DeviceAdded(d) => Sets::Keys {
            keys: vec![Key::Devices(d.user)],
            erasable: None,
        },
        Event::DeviceSession(d) => Sets::Keys {
            keys: vec![Key::Session(d.user, d.device)],
            erasable: None,
        },
        Event::ProfileUpdated(u) => {
            let mut keys = Vec::new();
            if u.display_name.is_some() {
                keys.push(Key::DisplayName(u.user));
            }
            if u.about.is_some() {
                keys.push(Key::About(u.user));
            }
            if u.avatar_media_id.is_some() {
                keys.push(Key::Avatar(u.user));
            }
            of(u.user, keys)
        }
        Event::ContactChanged(c) => of(c.user, vec![Key::Contact(c.user, c.contact)]),
        Event::BlockChanged(b) => of(b.user, vec![Key::Block(b.user, b.other)]),
        Event::PrivacySet(p) => of(p.user, vec![Key::Privacy(p.user)]),
        Event::MediaAdded(m) => Sets::Keys {
            keys: vec![Key::Media(m.media)],
            erasable: None,
        },
        Event::MediaDeleted(m) => Sets::Tombstone(Key::Media(m.media)),
        _ => Sets::Kept,
    }
}

/// Folds a partition's records, in order, into the offsets that may go.
#[derive(Default)]
pub struct Fold {
    /// Per key: the last offset that set it, and how many did.
    last: HashMap<Key, (u64, u32)>,
    /// Per user: the offset of their account's (last) deletion.
    deleted: HashMap<UserId, u64>,
    /// Every record that may go, with what it set.
    candidates: Vec<(u64, Sets)>,
}

impl Fold {
    pub fn add(&mut self, offset: u64, event: &Event) {
        if let Event::AccountDeleted(d) = event {
            self.deleted.insert(d.user, offset);
        }
        let s = sets(event);
        match &s {
            Sets::Keys { keys, .. } => keys.iter().for_each(|k| self.set(*k, offset)),
            Sets::Tombstone(k) => self.set(*k, offset),
            Sets::Kept => return,
        }
        self.candidates.push((offset, s));
    }

    fn set(&mut self, k: Key, offset: u64) {
        let e = self.last.entry(k).or_insert((offset, 0));
        *e = (offset, e.1 + 1);
    }

    /// The offsets whose records a later one made redundant.
    pub fn redundant(self) -> BTreeSet<u64> {
        let later = |k: &Key, o: u64| self.last.get(k).is_some_and(|&(l, _)| l > o);
        self.candidates
            .iter()
            .filter(|(o, s)| match s {
                Sets::Keys { keys, erasable } => {
                    let erased = erasable
                        .and_then(|u| self.deleted.get(&u))
                        .is_some_and(|&d| d > *o);
                    erased || keys.iter().all(|k| later(k, *o))
                }
                Sets::Tombstone(k) => later(k, *o) || self.last.get(k) == Some(&(*o, 1)),
                Sets::Kept => false,
            })
            .map(|(o, _)| *o)
            .collect()
    }
}

/// Compacts the records `range` of partition `p` holds (from its start to
/// every consumer's position); the records dropped. A record that does
/// not decode stops it, as it stops the jobs: nothing is judged by a
/// guess.
pub async fn compact_partition(log: &dyn Log, p: u32, range: Range<u64>) -> Result<u64> {
    let Range { start, end: floor } = range;
    let mut fold = Fold::default();
    let mut at = start;
    while at < floor {
        let batch = log
            .read(topics::ACCOUNTS, p, at, ReadLimit::records(READ))
            .await?;
        for r in batch.records.iter().take_while(|r| r.offset < floor) {
            let event = codec::decode(&r.payload).map_err(|e| EngineError::Undecodable {
                topic: topics::ACCOUNTS.to_owned(),
                partition: p,
                offset: r.offset,
                reason: e.to_string(),
            })?;
            fold.add(r.offset, &event);
        }
        if batch.next_offset <= at {
            break;
        }
        at = batch.next_offset;
    }
    let doomed = fold.redundant();
    if doomed.is_empty() {
        return Ok(0);
    }
    log.compact(topics::ACCOUNTS, p, doomed).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_schemas::event::*;

    fn profile(user: u64, name: Option<&str>, about: Option<&str>) -> Event {
        Event::ProfileUpdated(ProfileUpdated {
            user: UserId(user),
            display_name: name.map(Into::into),
            about: about.map(Into::into),
            avatar_media_id: None,
            ts: 0,
        })
    }

    fn contact(user: u64, other: u64, added: bool) -> Event {
        Event::ContactChanged(ContactChanged {
            user: UserId(user),
            contact: UserId(other),
            added,
            ts: 0,
        })
    }

    fn created(user: u64, hash: &str) -> Event {
        Event::AccountCreated(AccountCreated {
            user: UserId(user),
            username: format!("u{user}"),
            password_hash: hash.into(),
            display_name: "n".into(),
            ts: 0,
        })
    }

    fn redundant(events: &[Event]) -> Vec<u64> {
        let mut f = Fold::default();
        for (o, e) in events.iter().enumerate() {
            f.add(o as u64, e);
        }
        f.redundant().into_iter().collect()
    }

    #[test]
    fn the_latest_record_of_each_key_stays() {
        let events = [
            created(1, "h"),
            profile(1, Some("a"), Some("x")),
            profile(1, Some("b"), None),
            contact(1, 2, true),
            contact(1, 2, false),
            contact(1, 3, true),
            profile(1, None, Some("y")),
        ];
        // 1 goes once both its fields are set again (at 2 and 6).
        assert_eq!(redundant(&events), vec![1, 3]);
        assert_eq!(redundant(&events[..6]), vec![3], "about still from 1");
    }

    #[test]
    fn a_deletion_takes_what_came_before_and_leaves_the_account() {
        let media = MediaId(7);
        let events = [
            created(1, "secret-hash"),
            profile(1, Some("a"), None),
            contact(1, 2, true),
            contact(2, 1, true),
            Event::MediaAdded(MediaAdded {
                media,
                uploader: UserId(1),
                sha256: "s".into(),
                size: 1,
                mime: "image/png".into(),
                ts: 0,
            }),
            Event::MediaDeleted(MediaDeleted { media, ts: 0 }),
            Event::AccountDeleted(AccountDeleted {
                user: UserId(1),
                ts: 0,
            }),
            created(1, "!erased"),
        ];
        // The first account record goes (the erased one sets it again);
        // the deletion and the erased account stay; user 2's contact
        // stays; the upload goes, and its deletion with it next time.
        assert_eq!(redundant(&events), vec![0, 1, 2, 4]);
        let rest = [&events[3], &events[5], &events[6], &events[7]];
        let rest: Vec<Event> = rest.into_iter().cloned().collect();
        assert_eq!(redundant(&rest), vec![1], "the lone upload deletion");
    }
}
