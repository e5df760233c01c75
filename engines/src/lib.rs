//! The engine seams of Parley and their embedded implementations.
//!
//! Every role talks to storage through three traits defined here, never
//! through a concrete backend (only the `parley` binary picks one, by URL):
//! - [`log::Log`]: a partitioned log of named topics, with durable batch
//!   appends, reads from an offset, notified tails, consumer-group offsets
//!   and a per-partition epoch.
//! - [`state::StateStore`]: cursors, idempotency keys, delivered/read marks,
//!   presence, inboxes (items, and runs pointing at large groups' posts,
//!   stored once), group state, contacts, and job offsets written
//!   atomically with job output.
//! - [`history::History`]: every message, for scrollback and conversation
//!   lists, and the receipt and presence rows analysts query. Written only
//!   by the history writer, idempotently.
//!
//! Embedded implementations, for one machine with no servers:
//! - [`seglog::SegmentLog`]: CRC-framed segment files, group commit,
//!   torn-tail recovery, retention by size and age.
//! - [`kv::RedbState`]: a redb file.
//! - [`history_redb::RedbHistory`]: another redb file. (The ClickHouse
//!   history lives in `parley-analytics`, next to its schema.)
//!
//! Real engines: [`redis_state::RedisState`] (state on Redis),
//! [`redis_log::RedisLog`] (the log on Redis Streams) and
//! [`fluvio_log::FluvioLog`] (the log on Fluvio).
//!
//! A third seam, [`cluster::Cluster`], coordinates roles that run as
//! several processes: membership, partition leases, the session registry
//! and node mailboxes ([`cluster::LocalCluster`] in one process,
//! [`redis_cluster::RedisCluster`] on Redis). [`ownership::run_owned`]
//! shares a topic's partitions among a role's live nodes with it.
//!
//! [`job::run_job`] is the consumer loop every processor runs on top of the
//! two seams.
//!
//! [`contract`] (feature `contract`) holds the suite each seam's
//! implementations must pass. [`error::EngineError`] is this crate's one
//! error type; [`error::EngineError::retry`] says whether a retry can help.

pub mod cluster;
pub mod error;
pub mod fluvio_log;
pub mod history;
pub mod history_redb;
pub mod job;
pub mod kv;
pub mod log;
pub mod ownership;
pub mod redis_cluster;
pub mod redis_log;
pub mod redis_state;
pub mod seglog;
pub mod state;

#[cfg(feature = "contract")]
pub mod contract;

pub use cluster::{Cluster, LocalCluster, Mail, Member};
pub use error::{EngineError, Result, Retry};
pub use fluvio_log::FluvioLog;
pub use history::{ConversationSummary, History, HistoryBatch, MessageReceipt, PresenceSession};
pub use history_redb::RedbHistory;
pub use kv::RedbState;
pub use log::{Appended, Batch, Bounds, Epoch, Log, ReadLimit, Record, Retention, TopicSpec};
pub use redis_cluster::RedisCluster;
pub use redis_log::RedisLog;
pub use redis_state::RedisState;
pub use seglog::{Durability, SegmentLog, SegmentLogOptions};
pub use state::{Account, Applied, Claim, InboxEntry, Marks, Presence, StateOp, StateStore};
