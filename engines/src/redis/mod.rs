//! The Redis backends (feature `redis`): state, log and cluster on one
//! Redis, under a key prefix (`docs/redis-keys.md` lists every key).
//!
//! Layout:
//! - [`state`]: the state store, each atomic write one Lua script
//!   ([`RedisState`]).
//! - [`log`]: the log on Redis Streams, with `WAIT` for replicas
//!   ([`RedisLog`]).
//! - [`cluster`]: membership, leases, the session registry and node
//!   mailboxes (pub/sub) ([`RedisCluster`]).

pub mod cluster;
pub mod log;
pub mod state;

pub use cluster::RedisCluster;
pub use log::RedisLog;
pub use state::RedisState;
