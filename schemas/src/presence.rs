//! What "online" means, shared by every role that folds heartbeats: the
//! presence job (state and notices), the history's session writer, and the
//! edge answering `GET .../presence`.

use std::collections::HashMap;

use crate::event::Heartbeat;
use crate::ids::DeviceId;

/// A device with no heartbeat for this long is gone. Clients send one at
/// least every 5 s, so three missed beats mean offline.
pub const OFFLINE_AFTER_MS: u64 = 15_000;

/// Whether presence last set to `online` at `updated` still means online
/// at `now`: a user whose last heartbeat is older than
/// [`OFFLINE_AFTER_MS`] is offline even if no closing event was seen.
pub fn online_at(online: bool, updated: u64, now: u64) -> bool {
    online && now.saturating_sub(updated) <= OFFLINE_AFTER_MS
}

/// One user's live devices, each with its last heartbeat: one device
/// closing does not make a user offline whose other device is still there.
#[derive(Debug, Clone, Default)]
pub struct Devices(HashMap<DeviceId, u64>);

impl Devices {
    /// Folds in a heartbeat of this user: devices silent for longer than
    /// [`OFFLINE_AFTER_MS`] before it are dropped, a closing one leaves.
    /// Returns whether any device is left (the user is online).
    pub fn observe(&mut self, hb: &Heartbeat) -> bool {
        self.0
            .retain(|_, seen| hb.ts.saturating_sub(*seen) <= OFFLINE_AFTER_MS);
        if hb.closing {
            self.0.remove(&hb.device);
        } else {
            self.0.insert(hb.device, hb.ts);
        }
        !self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn beat(device: u64, ts: u64, closing: bool) -> Heartbeat {
        Heartbeat {
            user: UserId(1),
            device: DeviceId(device),
            active: false,
            closing,
            ts,
        }
    }

    #[test]
    fn a_user_is_online_while_any_device_is() {
        let mut d = Devices::default();
        assert!(d.observe(&beat(1, 1_000, false)));
        assert!(d.observe(&beat(2, 2_000, false)));
        assert!(d.observe(&beat(1, 3_000, true)), "device 2 is still there");
        assert!(!d.observe(&beat(2, 4_000, true)));
    }

    #[test]
    fn a_silent_device_is_forgotten() {
        let mut d = Devices::default();
        d.observe(&beat(1, 1_000, false));
        // Device 1 has been silent for longer than the timeout when 2 closes.
        assert!(!d.observe(&beat(2, 1_000 + OFFLINE_AFTER_MS + 1, true)));
        assert!(online_at(true, 1_000, 1_000 + OFFLINE_AFTER_MS));
        assert!(!online_at(true, 1_000, 1_000 + OFFLINE_AFTER_MS + 1));
        assert!(!online_at(false, 1_000, 1_000));
    }
}
