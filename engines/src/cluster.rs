//! The coordination seam for roles that run as several processes:
//! membership of a role's group, leases on partitions, the session
//! registry (user → the edge nodes holding their sockets) and a mailbox per
//! node for pushes that must reach another node.
//!
//! [`LocalCluster`] serves one process (`parley up`, tests); the Redis
//! implementation is [`crate::redis_cluster::RedisCluster`]. Every expiry
//! is judged by the one clock of the implementation (Redis's `TIME` for
//! Redis), never by the callers' clocks, which may disagree.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// One process's cluster: everything in memory.
#[derive(Default)]
pub struct LocalCluster {
    inner: Mutex<Local>,
}

#[derive(Default)]
struct Local {
    groups: HashMap<String, HashMap<u32, (Instant, String)>>,
    leases: HashMap<String, (u32, Instant)>,
    sessions: HashMap<UserId, HashMap<u32, Instant>>,
    mailboxes: HashMap<u32, mpsc::Sender<Mail>>,
}

impl LocalCluster {
    pub fn new() -> LocalCluster {
        LocalCluster::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Local, Instant) -> T) -> T {
        f(
            &mut self.inner.lock().expect("cluster lock"),
            Instant::now(),
        )
    }
}

#[async_trait]
impl Cluster for LocalCluster {
    async fn heartbeat(&self, group: &str, member: &Member, ttl: Duration) -> Result<Vec<Member>> {
        Ok(self.with(|l, now| {
            let g = l.groups.entry(group.to_string()).or_default();
            g.insert(member.node, (now + ttl, member.addr.clone()));
            g.retain(|_, (until, _)| *until > now);
            let mut live: Vec<Member> = g
                .iter()
                .map(|(&node, (_, addr))| Member {
                    node,
                    addr: addr.clone(),
                })
                .collect();
            live.sort_by_key(|m| m.node);
            live
        }))
    }

    async fn members(&self, group: &str) -> Result<Vec<Member>> {
        Ok(self.with(|l, now| {
            let mut live: Vec<Member> = l
                .groups
                .get(group)
                .into_iter()
                .flatten()
                .filter(|(_, (until, _))| *until > now)
                .map(|(&node, (_, addr))| Member {
                    node,
                    addr: addr.clone(),
                })
                .collect();
            live.sort_by_key(|m| m.node);
            live
        }))
    }

    async fn leave(&self, group: &str, node: u32) -> Result<()> {
        self.with(|l, _| {
            if let Some(g) = l.groups.get_mut(group) {
                g.remove(&node);
            }
        });
        Ok(())
    }

    async fn lease(&self, name: &str, node: u32, ttl: Duration) -> Result<bool> {
        Ok(self.with(|l, now| match l.leases.get_mut(name) {
            Some((holder, until)) if *until > now && *holder != node => false,
            Some(entry) => {
                *entry = (node, now + ttl);
                true
            }
            None => {
                l.leases.insert(name.to_string(), (node, now + ttl));
                true
            }
        }))
    }

    async fn release(&self, name: &str, node: u32) -> Result<()> {
        self.with(|l, _| {
            if l.leases.get(name).is_some_and(|(h, _)| *h == node) {
                l.leases.remove(name);
            }
        });
        Ok(())
    }

    async fn holder(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.with(|l, now| {
            l.leases
                .get(name)
                .filter(|(_, until)| *until > now)
                .map(|(h, _)| *h)
        }))
    }

    async fn session_add(&self, user: UserId, node: u32, ttl: Duration) -> Result<()> {
        self.with(|l, now| l.sessions.entry(user).or_default().insert(node, now + ttl));
        Ok(())
    }

    async fn session_remove(&self, user: UserId, node: u32) -> Result<()> {
        self.with(|l, _| {
            if let Some(s) = l.sessions.get_mut(&user) {
                s.remove(&node);
                if s.is_empty() {
                    l.sessions.remove(&user);
                }
            }
        });
        Ok(())
    }

    async fn session_nodes(&self, users: &[UserId]) -> Result<Vec<Vec<u32>>> {
        Ok(self.with(|l, now| {
            users
                .iter()
                .map(|u| {
                    let mut nodes: Vec<u32> = l
                        .sessions
                        .get(u)
                        .into_iter()
                        .flatten()
                        .filter(|(_, until)| **until > now)
                        .map(|(n, _)| *n)
                        .collect();
                    nodes.sort_unstable();
                    nodes
                })
                .collect()
        }))
    }

    async fn publish(&self, node: u32, payload: Bytes) -> Result<()> {
        let tx = self.with(|l, _| l.mailboxes.get(&node).cloned());
        if let Some(tx) = tx {
            // Full: dropped, as pub/sub would; the receiver recovers.
            let _ = tx.try_send(Mail::Message(payload));
        }
        Ok(())
    }

    async fn subscribe(&self, node: u32) -> Result<mpsc::Receiver<Mail>> {
        let (tx, rx) = mpsc::channel(MAILBOX);
        self.with(|l, _| l.mailboxes.insert(node, tx));
        Ok(rx)
    }
}
