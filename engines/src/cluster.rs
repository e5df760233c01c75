//! The coordination seam for roles that run as several processes:
//! membership of a role's group, leases on partitions, the session
//! registry (user → the edge nodes holding their sockets) and a mailbox per
//! node for pushes that must reach another node.
//!
//! [`LocalCluster`](crate::embedded::LocalCluster) serves one process
//! (`parley up`, tests); the Redis implementation is `redis::RedisCluster`
//! (feature `redis`). Every expiry
//! is judged by the one clock of the implementation (Redis's `TIME` for
//! Redis), never by the callers' clocks, which may disagree.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parley_schemas::ids::UserId;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::Result;

/// A live process of a role: its node id and the address other nodes
/// reach it on (the edge's HTTP address; empty for roles without one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node: u32,
    pub addr: String,
}

/// What a node's mailbox yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mail {
    Message(Bytes),
    /// The subscription was lost and is back: messages may have been
    /// missed meanwhile (pub/sub does not keep them), so the receiver
    /// should recover from durable state.
    Gap,
}

/// Mail queued per node before the oldest is dropped.
pub const MAILBOX: usize = 65_536;

#[async_trait]
pub trait Cluster: Send + Sync {
    /// Says `member` is alive in `group` for `ttl`; returns the live
    /// members, `member` included, ordered by node.
    async fn heartbeat(&self, group: &str, member: &Member, ttl: Duration) -> Result<Vec<Member>>;

    /// The live members of `group`, ordered by node, without joining it.
    async fn members(&self, group: &str) -> Result<Vec<Member>>;

    /// Leaves `group` at once (a clean stop), so others rebalance now.
    async fn leave(&self, group: &str, node: u32) -> Result<()>;

    /// Takes lease `name` if free, or renews it if `node` holds it.
    /// Returns whether `node` holds it now.
    async fn lease(&self, name: &str, node: u32, ttl: Duration) -> Result<bool>;

    /// Gives lease `name` up if `node` holds it.
    async fn release(&self, name: &str, node: u32) -> Result<()>;

    /// Who holds lease `name`.
    async fn holder(&self, name: &str) -> Result<Option<u32>>;

    /// `user` has a socket on `node`, for `ttl` unless refreshed.
    async fn session_add(&self, user: UserId, node: u32, ttl: Duration) -> Result<()>;

    /// `user` has no socket left on `node`.
    async fn session_remove(&self, user: UserId, node: u32) -> Result<()>;

    /// The nodes holding sockets of each user, in the order asked.
    async fn session_nodes(&self, users: &[UserId]) -> Result<Vec<Vec<u32>>>;

    /// Puts `payload` in `node`'s mailbox (best effort: a node that is not
    /// subscribed misses it, and recovers from durable state).
    async fn publish(&self, node: u32, payload: Bytes) -> Result<()>;

    /// `node`'s mailbox. One subscriber per node.
    async fn subscribe(&self, node: u32) -> Result<mpsc::Receiver<Mail>>;
}

/// The lease name of `partition` of a role's `scope` (e.g. `append/events`).
pub fn lease_name(scope: &str, partition: u32) -> String {
    format!("{scope}/{partition}")
}
