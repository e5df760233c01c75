//! The cluster seam in one process (`parley up`, tests): membership,
//! leases, sessions and mailboxes in memory, judged by this process's
//! monotonic clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parley_schemas::ids::UserId;
use tokio::sync::mpsc;

use crate::cluster::{Cluster, Mail, Member, MAILBOX};
use crate::error::Result;

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
