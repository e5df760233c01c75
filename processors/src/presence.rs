//! The presence job, on `presence` (by user): heartbeats fold into online
//! or offline and last seen; a change is announced to the watchers the
//! owner's privacy setting allows, through their inbox partitions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parley_engines::job::{events, Processor};
use parley_engines::state::PresenceStore;
use parley_engines::telemetry::emit;
use parley_engines::{Applied, Log, Record, Result, StateOp};
use parley_schemas::event::{Event, PresenceChanged, PresenceNotice};
use parley_schemas::ids::{now_ms, UserId};
use parley_schemas::partition::user_partition;
use parley_schemas::presence::{Devices, OFFLINE_AFTER_MS};
use parley_schemas::wire::Audience;
use parley_schemas::{codec, topics};

use crate::internal_events::{PresenceFanoutCapped, PresenceNoticesSent};

pub const JOB: &str = parley_schemas::jobs::PRESENCE;

/// Watchers a presence change is pushed to at most: past this, a user's
/// watchers read presence when they look (`GET .../presence`).
pub const MAX_FANOUT: usize = 10_000;

/// Folds heartbeats into presence. It remembers which devices of each user
/// it has seen, so one device closing does not mark a user offline whose
/// other device is still there. When a user comes online or goes offline
/// it tells the users who have them as a contact and may see it, through
/// their inboxes' partitions (the delivery node pushes, stores nothing).
pub struct PresenceJob {
    log: Arc<dyn Log>,
    state: Arc<dyn PresenceStore>,
    inbox_partitions: u32,
    devices: HashMap<UserId, Devices>,
    /// Whether each user was last announced online.
    announced: HashMap<UserId, bool>,
}

impl PresenceJob {
    pub fn new(log: Arc<dyn Log>, state: Arc<dyn PresenceStore>, inbox_partitions: u32) -> Self {
        PresenceJob {
            log,
            state,
            inbox_partitions,
            devices: HashMap::new(),
            announced: HashMap::new(),
        }
    }

    /// Who may be told of `user`'s presence: their watchers, as the
    /// privacy setting allows, at most [`MAX_FANOUT`].
    async fn audience(&self, user: UserId) -> Result<Vec<UserId>> {
        let audience = self.state.privacy(user).await?;
        if audience == Audience::Nobody {
            return Ok(Vec::new());
        }
        // The contact list matters only to a contacts-only setting.
        let contacts: HashSet<UserId> = if audience == Audience::Contacts {
            self.state.contacts(user).await?.into_iter().collect()
        } else {
            HashSet::new()
        };
        let mut watchers = self.state.watchers(user).await?;
        let blocked: HashSet<UserId> = self.state.blocked(user).await?.into_iter().collect();
        watchers.retain(|w| audience.allows(contacts.contains(w)) && !blocked.contains(w));
        if watchers.len() > MAX_FANOUT {
            emit(PresenceFanoutCapped {
                watchers: watchers.len(),
                cap: MAX_FANOUT,
            });
            watchers.truncate(MAX_FANOUT);
        }
        Ok(watchers)
    }

    /// Appends notices of the users whose online state changed.
    async fn announce(&mut self, changed: Vec<(UserId, bool, u64)>) -> Result<()> {
        let mut out: BTreeMap<u32, Vec<Bytes>> = BTreeMap::new();
        for (user, online, at) in changed {
            let watchers = self.audience(user).await?;
            if watchers.is_empty() {
                continue;
            }
            let last_seen = self.state.presence(user).await?.map_or(0, |p| p.last_seen);
            let presence = PresenceChanged {
                user,
                online,
                last_seen,
                ts: at,
            };
            emit(PresenceNoticesSent {
                watchers: watchers.len(),
            });
            let mut by_partition: BTreeMap<u32, Vec<UserId>> = BTreeMap::new();
            for w in watchers {
                by_partition
                    .entry(user_partition(w, self.inbox_partitions))
                    .or_default()
                    .push(w);
            }
            for (p, to) in by_partition {
                let notice = Event::PresenceNotice(PresenceNotice { to, presence });
                out.entry(p)
                    .or_default()
                    .push(Bytes::from(codec::encode(&notice)));
            }
        }
        let appends = out
            .into_iter()
            .map(|(p, recs)| self.log.append(topics::INBOX, p, recs));
        futures::future::try_join_all(appends).await?;
        Ok(())
    }
}

#[async_trait]
impl Processor for PresenceJob {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        // The last word per user in this batch: (online, last_seen, at).
        let mut latest: HashMap<UserId, (bool, Option<u64>, u64)> = HashMap::new();
        for (offset, event) in events(topics::PRESENCE, partition, records)? {
            let Event::Heartbeat(hb) = event else {
                tracing::warn!(
                    partition,
                    offset,
                    kind = event.kind(),
                    "unexpected event on presence"
                );
                continue;
            };
            let online = self.devices.entry(hb.user).or_default().observe(&hb);
            let entry = latest.entry(hb.user).or_insert((online, None, hb.ts));
            entry.0 = online;
            entry.2 = hb.ts;
            // Last seen is user activity: only an active heartbeat moves it.
            if hb.active && !hb.closing {
                entry.1 = Some(hb.ts);
            }
        }
        // Only changes, and only fresh ones: a replay of old heartbeats
        // (a rebuilt store) announces nothing.
        let fresh = now_ms().saturating_sub(OFFLINE_AFTER_MS);
        let changed: Vec<(UserId, bool, u64)> = latest
            .iter()
            .filter(|(user, (online, _, at))| {
                *at >= fresh && self.announced.get(user) != Some(online)
            })
            .map(|(user, (online, _, at))| (*user, *online, *at))
            .collect();
        for (user, online, _) in &changed {
            self.announced.insert(*user, *online);
        }
        if !changed.is_empty() {
            self.announce(changed).await?;
        }
        Ok(latest
            .into_iter()
            .map(|(user, (online, last_seen, at))| StateOp::SetPresence {
                user,
                online,
                last_seen,
                at,
            })
            .collect())
    }

    async fn committed(&mut self, applied: Applied) {
        if let Applied::Stale { .. } = applied {
            self.announced.clear();
        }
    }
}
