use std::collections::HashMap;

use async_trait::async_trait;
use parley_engines::job::{events, Processor};
use parley_engines::{Record, Result, StateOp};
use parley_schemas::event::Event;
use parley_schemas::ids::{DeviceId, UserId};
use parley_schemas::topics;

pub const JOB: &str = "presence";

/// A device with no heartbeat for this long is gone.
pub const OFFLINE_AFTER_MS: u64 = 15_000;

/// Whether a stored presence still means online at `now`: heartbeats come
/// at least every 5 s, so a user whose last one is older than
/// [`OFFLINE_AFTER_MS`] is offline even if no closing event was seen.
pub fn is_online(p: &parley_engines::Presence, now: u64) -> bool {
    p.online && now.saturating_sub(p.updated) <= OFFLINE_AFTER_MS
}

/// Folds heartbeats into presence. It remembers which devices of each user
/// it has seen, so one device closing does not mark a user offline whose
/// other device is still there.
#[derive(Default)]
pub struct PresenceJob {
    devices: HashMap<UserId, HashMap<DeviceId, u64>>,
}

#[async_trait]
impl Processor for PresenceJob {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        // The last word per user in this batch: (online, last_seen, at).
        let mut latest: HashMap<UserId, (bool, Option<u64>, u64)> = HashMap::new();
        for (offset, event) in events(topics::PRESENCE, partition, records) {
            let Event::Heartbeat(hb) = event else {
                tracing::warn!(
                    partition,
                    offset,
                    kind = event.kind(),
                    "unexpected event on presence"
                );
                continue;
            };
            let devices = self.devices.entry(hb.user).or_default();
            devices.retain(|_, seen| hb.ts.saturating_sub(*seen) <= OFFLINE_AFTER_MS);
            if hb.closing {
                devices.remove(&hb.device);
            } else {
                devices.insert(hb.device, hb.ts);
            }
            let online = !devices.is_empty();
            let entry = latest.entry(hb.user).or_insert((online, None, hb.ts));
            entry.0 = online;
            entry.2 = hb.ts;
            // Last seen is user activity: only an active heartbeat moves it.
            if hb.active && !hb.closing {
                entry.1 = Some(hb.ts);
            }
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
}
