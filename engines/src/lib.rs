//! The engine seams of Parley and every backend behind them.
//!
//! Every role talks to storage and to other nodes through the traits
//! defined here, never through a concrete backend: only the `parley`
//! binary picks one, by URL, and only the backends it was built with
//! (cargo features) exist.
//!
//! Layout:
//! - The seams:
//!   - [`log::Log`]: a partitioned log of named topics, with durable batch
//!     appends, reads from an offset, notified tails, consumer-group
//!     offsets, a per-partition epoch, trimming and compaction.
//!   - [`state::StateStore`]: what jobs derive from the log and roles read
//!     back, in narrow traits (accounts, inboxes, conversations, contacts
//!     and presence, job output), with job offsets written atomically with
//!     job output.
//!   - [`history::History`]: every message, for scrollback and
//!     conversation lists, and the receipt and presence rows analysts
//!     query. Written only by the history writer, idempotently.
//!   - [`blob::BlobStore`]: media bytes by key, each blob visible only
//!     once whole and durable.
//!   - [`cluster::Cluster`]: membership, partition leases, the session
//!     registry and node mailboxes, for roles run as several processes;
//!     and beside it [`push`], where a job's pushes to devices go (the
//!     edge's hub in one process, mail to the edges in a cluster).
//! - The runtime on top of them: [`job::run_job`], the consumer loop every
//!   processor runs, and [`ownership::run_owned`], which shares a topic's
//!   partitions among a role's live nodes.
//! - The backends, one folder each:
//!   - [`embedded`] (always): segment-file log, redb state, redb history,
//!     blobs in a directory, in-memory cluster.
//!   - `redis` (feature `redis`): state, log (Streams) and cluster.
//!   - `fluvio` (feature `fluvio`): the log on Fluvio.
//!   - `clickhouse` (feature `clickhouse`): the history on ClickHouse.
//!   - `s3` (feature `s3`): blobs on S3 or an S3-compatible server.
//! - [`contract`] (feature `contract`): the suite each seam's backends
//!   must pass, and launchers of real servers (redis-server,
//!   clickhouse-server, an S3 server) on free ports for tests.
//! - [`telemetry`]: telemetry as named events that log and count at once
//!   (every crate's `internal_events` module); [`internal_events`] holds
//!   this crate's.
//! - [`egress`]: which addresses outbound requests to user-named URLs
//!   (Web Push endpoints) may reach: public unicast only.
//! - [`error::EngineError`]: this crate's one error type;
//!   [`error::EngineError::retry`] says whether a retry can help.

pub mod blob;
pub mod cluster;
pub mod egress;
pub mod error;
pub mod history;
pub mod internal_events;
pub mod job;
pub mod log;
pub mod ownership;
pub mod push;
pub mod state;
pub mod telemetry;

pub mod embedded;

#[cfg(feature = "clickhouse")]
pub mod clickhouse;
#[cfg(feature = "fluvio")]
pub mod fluvio;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "s3")]
pub mod s3;

#[cfg(feature = "contract")]
pub mod contract;

pub use blob::{BlobInfo, BlobStore, BlobWriter, ByteStream};
pub use cluster::{Cluster, Mail, Member};
pub use embedded::{
    Durability, FsBlobs, LocalCluster, RedbHistory, RedbState, SegmentLog, SegmentLogOptions,
};
pub use error::{EngineError, Result, Retry};
pub use history::{ConversationSummary, History, HistoryBatch, MessageReceipt, PresenceSession};
pub use log::{Appended, Batch, Bounds, Epoch, Log, ReadLimit, Record, Retention, TopicSpec};
pub use state::{
    Account, Applied, DeviceSession, FirstSend, InboxEntry, Marks, Presence, StateOp, StateStore,
};
