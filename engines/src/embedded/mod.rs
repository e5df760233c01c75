//! The embedded backends: every seam on one machine, with no servers
//! (`parley up`, tests). Always built.
//!
//! Layout:
//! - [`seglog`]: the log as CRC-framed segment files with group commit,
//!   torn-tail recovery and retention ([`SegmentLog`]).
//! - [`state`]: the state store in a redb file ([`RedbState`]).
//! - [`history`]: the history in a second redb file ([`RedbHistory`]).
//! - [`blobs`]: media blobs as files in a directory ([`FsBlobs`]).
//! - [`cluster`]: the cluster seam in memory ([`LocalCluster`]).

pub mod blobs;
pub mod cluster;
pub mod history;
pub mod seglog;
pub mod state;

pub use blobs::FsBlobs;
pub use cluster::LocalCluster;
pub use history::RedbHistory;
pub use seglog::{Durability, SegmentLog, SegmentLogOptions};
pub use state::RedbState;
