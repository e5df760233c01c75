//! Identifiers. All are `u64` inside; on the JSON wire they are decimal
//! strings, in the binary codec they are varints.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id must be a decimal integer, got {0:?}")]
    NotANumber(String),
    #[error("conversation id must be `d:<low>:<high>` or `g:<group>`, got {0:?}")]
    BadConversation(String),
    #[error("node id {0} is out of range 0..{MAX_NODES}")]
    NodeOutOfRange(u16),
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_u64(s).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_u64(self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_u64(d).map($name)
            }
        }
    };
}

numeric_id!(
    /// A registered user.
    UserId
);
numeric_id!(
    /// One device (session) of a user; cursors are kept per device.
    DeviceId
);
numeric_id!(
    /// A group chat.
    GroupId
);
numeric_id!(
    /// A message, issued at append: see [`MessageIdGenerator`] for the layout.
    MessageId
);

/// Only canonical decimal: no sign, no leading zeros, no spaces, so each id
/// has exactly one string form and string keys never alias.
fn parse_u64(s: &str) -> Result<u64, IdError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(IdError::NotANumber(s.to_owned()));
    }
    s.parse().map_err(|_| IdError::NotANumber(s.to_owned()))
}

fn serialize_u64<S: Serializer>(v: u64, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.collect_str(&v)
    } else {
        s.serialize_u64(v)
    }
}

fn deserialize_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an id as a decimal string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
            parse_u64(s).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
    }
    if d.is_human_readable() {
        // The protocol says ids are strings; a JSON number is refused so
        // that clients never get away with a precision-losing form.
        d.deserialize_str(V)
    } else {
        d.deserialize_u64(V)
    }
}

/// `d:<low>:<high>` for a 1:1 chat, `g:<group>` for a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub enum ConversationId {
    Direct { low: UserId, high: UserId },
    Group(GroupId),
}

impl ConversationId {
    /// The 1:1 conversation of two users; both sides compute the same id.
    pub fn direct(a: UserId, b: UserId) -> Self {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        ConversationId::Direct { low, high }
    }

    pub fn group(g: GroupId) -> Self {
        ConversationId::Group(g)
    }

    /// Whether `user` is one side of this 1:1 chat (groups need the member list).
    pub fn is_direct_member(&self, user: UserId) -> bool {
        matches!(self, ConversationId::Direct { low, high } if *low == user || *high == user)
    }

    /// The other side of a 1:1 chat, seen from `me`.
    pub fn peer_of(&self, me: UserId) -> Option<UserId> {
        match *self {
            ConversationId::Direct { low, high } if low == me => Some(high),
            ConversationId::Direct { low, high } if high == me => Some(low),
            _ => None,
        }
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConversationId::Direct { low, high } => write!(f, "d:{low}:{high}"),
            ConversationId::Group(g) => write!(f, "g:{g}"),
        }
    }
}

impl FromStr for ConversationId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let bad = || IdError::BadConversation(s.to_owned());
        if let Some(rest) = s.strip_prefix("d:") {
            let (a, b) = rest.split_once(':').ok_or_else(bad)?;
            let (low, high) = (
                a.parse::<UserId>().map_err(|_| bad())?,
                b.parse::<UserId>().map_err(|_| bad())?,
            );
            // Only the canonical order is an id; `d:9:3` would alias `d:3:9`.
            if low > high {
                return Err(bad());
            }
            Ok(ConversationId::Direct { low, high })
        } else if let Some(rest) = s.strip_prefix("g:") {
            Ok(ConversationId::Group(rest.parse().map_err(|_| bad())?))
        } else {
            Err(bad())
        }
    }
}

impl Serialize for ConversationId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            ConversationId::serialize(self, s)
        }
    }
}

impl<'de> Deserialize<'de> for ConversationId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(de::Error::custom)
        } else {
            let c = ConversationId::deserialize(d)?;
            if let ConversationId::Direct { low, high } = c {
                if low > high {
                    return Err(de::Error::custom("direct conversation ids out of order"));
                }
            }
            Ok(c)
        }
    }
}

// ---------------------------------------------------------------------------
// MessageId layout: [0][41 bits ms since EPOCH][10 bits node][12 bits seq].
// The top bit stays clear so the id is also a positive i64 (ClickHouse,
// JavaScript BigInt, Java long all take it unchanged). 41 bits of ms last
// until 2093; 10 bits give 1,024 nodes; 12 bits give 4,096 ids per ms per node.

/// 2024-01-01T00:00:00Z: the zero of the id's clock.
pub const ID_EPOCH_MS: u64 = 1_704_067_200_000;
pub const NODE_BITS: u32 = 10;
pub const SEQ_BITS: u32 = 12;
pub const MAX_NODES: u16 = 1 << NODE_BITS;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const NODE_MASK: u64 = (1 << NODE_BITS) - 1;
const MS_BITS: u32 = 63 - NODE_BITS - SEQ_BITS;
const MS_MASK: u64 = (1 << MS_BITS) - 1;

impl MessageId {
    pub fn from_parts(unix_ms: u64, node: u16, seq: u16) -> Self {
        let ms = unix_ms.saturating_sub(ID_EPOCH_MS) & MS_MASK;
        MessageId(
            (ms << (NODE_BITS + SEQ_BITS))
                | ((node as u64 & NODE_MASK) << SEQ_BITS)
                | (seq as u64 & SEQ_MASK),
        )
    }

    /// Milliseconds since the Unix epoch at which the id was issued.
    pub fn unix_ms(self) -> u64 {
        (self.0 >> (NODE_BITS + SEQ_BITS)) + ID_EPOCH_MS
    }

    pub fn node(self) -> u16 {
        ((self.0 >> SEQ_BITS) & NODE_MASK) as u16
    }

    pub fn seq(self) -> u16 {
        (self.0 & SEQ_MASK) as u16
    }

    /// The smallest id that any node could issue at `unix_ms`: a bound for
    /// time-range scans.
    pub fn lower_bound_at(unix_ms: u64) -> Self {
        MessageId::from_parts(unix_ms, 0, 0)
    }
}

/// Issues [`MessageId`]s for one node: unique across nodes (the node id is
/// in the bits) and strictly increasing on this node, even when the wall
/// clock steps back.
///
/// The state is one atomic word `(ms << SEQ_BITS) | seq`. The next state is
/// `max(prev + 1, now << SEQ_BITS)`: a clock that steps back just keeps
/// counting from the last issued value, and a sequence that overflows carries
/// into the next millisecond instead of blocking. The logical clock may run
/// ahead of the wall clock under sustained > 4M ids/s; it falls back in line
/// as soon as the rate drops.
#[derive(Debug)]
pub struct MessageIdGenerator {
    node: u16,
    state: AtomicU64,
}

impl MessageIdGenerator {
    pub fn new(node: u16) -> Result<Self, IdError> {
        if node >= MAX_NODES {
            return Err(IdError::NodeOutOfRange(node));
        }
        Ok(MessageIdGenerator {
            node,
            state: AtomicU64::new(0),
        })
    }

    pub fn node(&self) -> u16 {
        self.node
    }

    pub fn next_id(&self) -> MessageId {
        self.next_at(now_ms())
    }

    /// Makes every id issued from now on larger than `id`, whichever node
    /// issued it: a node taking over a partition from another continues
    /// its order even if its own clock is behind.
    pub fn issue_after(&self, id: MessageId) {
        let ms = id.0 >> (NODE_BITS + SEQ_BITS);
        self.state
            .fetch_max(((ms + 1) << SEQ_BITS) - 1, Ordering::Relaxed);
    }

    /// As [`next_id`](Self::next_id) with the wall clock given: tests drive
    /// it through clock steps.
    pub fn next_at(&self, unix_ms: u64) -> MessageId {
        let floor = (unix_ms.saturating_sub(ID_EPOCH_MS) & MS_MASK) << SEQ_BITS;
        let mut prev = self.state.load(Ordering::Relaxed);
        loop {
            let next = (prev + 1).max(floor);
            match self
                .state
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let ms = next >> SEQ_BITS;
                    let seq = next & SEQ_MASK;
                    return MessageId(
                        (ms << (NODE_BITS + SEQ_BITS)) | ((self.node as u64) << SEQ_BITS) | seq,
                    );
                }
                Err(actual) => prev = actual,
            }
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn issue_after_continues_another_nodes_order() {
        let ahead = MessageIdGenerator::new(7).unwrap();
        let behind = MessageIdGenerator::new(3).unwrap();
        let t = ID_EPOCH_MS + 5_000_000;
        let last = ahead.next_at(t + 2_000);
        // A clock two seconds behind would issue a smaller id...
        assert!(behind.next_at(t) < last);
        behind.issue_after(last);
        // ...but not after it saw the last id of the partition.
        let next = behind.next_at(t);
        assert!(next > last, "{next:?} <= {last:?}");
        assert_eq!(next.node(), 3);
        assert!(behind.next_at(t) > next);
    }

    #[test]
    fn conversation_ids_have_one_canonical_form() {
        let c = ConversationId::direct(UserId(9), UserId(3));
        assert_eq!(c.to_string(), "d:3:9");
        assert_eq!("d:3:9".parse::<ConversationId>().unwrap(), c);
        assert_eq!(ConversationId::direct(UserId(3), UserId(9)), c);
        assert_eq!(c.peer_of(UserId(3)), Some(UserId(9)));
        assert_eq!(c.peer_of(UserId(4)), None);
        for bad in [
            "d:9:3", "d:3", "d:03:9", "x:1", "g:", "g:-1", "d:1:2:3", "", "g:1 ",
        ] {
            assert!(bad.parse::<ConversationId>().is_err(), "{bad}");
        }
        assert_eq!(
            "g:42".parse::<ConversationId>().unwrap().to_string(),
            "g:42"
        );
    }

    #[test]
    fn ids_are_strings_in_json() {
        assert_eq!(serde_json::to_string(&UserId(7)).unwrap(), "\"7\"");
        assert_eq!(serde_json::from_str::<UserId>("\"7\"").unwrap(), UserId(7));
        assert!(serde_json::from_str::<UserId>("7").is_err());
        assert!(serde_json::from_str::<UserId>("\"007\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"18446744073709551616\"").is_err());
        let big = MessageId(u64::MAX >> 1);
        let json = serde_json::to_string(&big).unwrap();
        assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), big);
    }

    #[test]
    fn message_id_layout_round_trips() {
        let t = 1_764_000_000_123;
        let id = MessageId::from_parts(t, 1023, 4095);
        assert_eq!((id.unix_ms(), id.node(), id.seq()), (t, 1023, 4095));
        assert!(id.0 < 1 << 63, "top bit stays clear");
        assert!(
            MessageId::from_parts(t + 1, 0, 0) > id,
            "time dominates node and seq"
        );
    }

    #[test]
    fn generator_is_monotonic_when_the_clock_steps_back() {
        let g = MessageIdGenerator::new(5).unwrap();
        let t = 1_764_000_000_000;
        let mut last = g.next_at(t);
        // Forward, a long step back, a stall, then forward again.
        let clock = (0..100)
            .map(|i| t + i)
            .chain((0..100).map(|_| t - 60_000))
            .chain((0..10_000).map(|_| t + 50))
            .chain((0..100).map(|i| t + 1_000 + i));
        for now in clock {
            let id = g.next_at(now);
            assert!(id > last, "{id:?} after {last:?} at {now}");
            assert_eq!(id.node(), 5);
            last = id;
        }
        // 10,000 ids in one stalled ms overflow 12 bits of sequence: they
        // carry into later ms instead of repeating.
        assert!(last.unix_ms() >= t + 1_000);
    }

    #[test]
    fn generators_on_1024_nodes_never_collide() {
        let t = 1_764_000_000_000;
        let mut seen = HashSet::new();
        for node in 0..MAX_NODES {
            let g = MessageIdGenerator::new(node).unwrap();
            for _ in 0..50 {
                assert!(seen.insert(g.next_at(t)), "collision on node {node}");
            }
        }
        assert!(MessageIdGenerator::new(MAX_NODES).is_err());
    }

    #[test]
    fn generator_is_unique_across_threads() {
        let g = std::sync::Arc::new(MessageIdGenerator::new(1).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || {
                    let mut v = Vec::with_capacity(20_000);
                    let mut last = MessageId(0);
                    for _ in 0..20_000 {
                        let id = g.next_id();
                        assert!(id > last, "per-thread order");
                        last = id;
                        v.push(id);
                    }
                    v
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(all.insert(id));
            }
        }
        assert_eq!(all.len(), 80_000);
    }
}
