//! Shared vocabulary of Parley: every other crate speaks in these types.
//!
//! Layout:
//! - [`ids`]: `UserId`, `DeviceId`, `GroupId`, `ConversationId`, and the
//!   64-bit time-sortable [`MessageId`] with its per-node generator.
//! - [`event`]: the events that travel through the partitioned log
//!   (message sent, receipt, heartbeat, inbox item, status, presence).
//! - [`group`]: group membership rules and the state derived from a
//!   group's events (members, their spans, receipt marks).
//! - [`codec`]: the compact, versioned binary envelope those events are
//!   stored in. Decoding never panics: garbage is an [`codec::DecodeError`].
//! - [`wire`]: the JSON client protocol of `shared/protocol.md`, with serde.
//! - [`media`]: the id of an upload, the keys its bytes are stored at,
//!   and the image limits.
//! - [`topics`]: the names of the log's topics; [`jobs`]: the names of
//!   the jobs that consume them (their offsets are stored data).
//! - [`presence`]: what online means (a heartbeat within 15 s, from any
//!   of the user's devices), for every role that folds heartbeats.
//! - [`retention`]: what a deployment keeps of messages (history, or only
//!   until every device has them).
//! - [`partition`]: the stable conversation → partition and user →
//!   partition functions. Their output is pinned by tests: changing it would
//!   silently re-route every stored record.
//!
//! Ids are `u64` inside and decimal strings on the wire (JavaScript numbers
//! lose precision past 2^53); serde picks the form by
//! `Serializer::is_human_readable`, so the binary codec stays compact.

pub mod codec;
pub mod event;
pub mod group;
pub mod ids;
pub mod jobs;
pub mod media;
pub mod partition;
pub mod presence;
pub mod retention;
pub mod topics;
pub mod wire;

pub use codec::{decode, encode, DecodeError};
pub use event::Event;
pub use ids::{ConversationId, DeviceId, GroupId, IdError, MessageId, MessageIdGenerator, UserId};
