use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use parley_schemas::ids::{DeviceId, UserId};
use parley_schemas::wire::{ServerFrame, SharedMsg};
use tokio::sync::mpsc;

/// What a device's writer receives.
#[derive(Debug, Clone)]
pub enum Push {
    /// Inbox item `seq` of the user: a `msg`, rendered once for every
    /// inbox it goes to. `origin` is the device that sent it, when the item
    /// is in its sender's own inbox: that device already has it.
    Item {
        seq: u64,
        msg: Arc<SharedMsg>,
        origin: Option<DeviceId>,
    },
    /// A frame outside the inbox (`status`, `typing`, `presence`).
    Frame(Arc<ServerFrame>),
    /// Pushes may have been lost on the way here: check the store.
    Resync,
}

/// Queue depth per device. A device that falls this far behind loses live
/// pushes, not messages: its feed refills the gap from the store.
const QUEUE: usize = 1024;

struct Conn {
    id: u64,
    device: DeviceId,
    tx: mpsc::Sender<Push>,
}

/// Users → their connected devices.
#[derive(Default)]
pub struct Hub {
    conns: RwLock<HashMap<UserId, Vec<Conn>>>,
    next_id: AtomicU64,
}

/// Keeps a device registered; dropping it unregisters.
pub struct Registration {
    hub: Arc<Hub>,
    user: UserId,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut conns = self.hub.conns.write().expect("hub lock");
        if let Some(list) = conns.get_mut(&self.user) {
            list.retain(|c| c.id != self.id);
            if list.is_empty() {
                conns.remove(&self.user);
            }
        }
    }
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    pub fn register(
        self: &Arc<Self>,
        user: UserId,
        device: DeviceId,
    ) -> (Registration, mpsc::Receiver<Push>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns
            .write()
            .expect("hub lock")
            .entry(user)
            .or_default()
            .push(Conn { id, device, tx });
        (
            Registration {
                hub: self.clone(),
                user,
                id,
            },
            rx,
        )
    }

    /// Queues `push` for every connected device of `user` but `except`.
    pub fn push(&self, user: UserId, push: &Push, except: Option<DeviceId>) {
        let conns = self.conns.read().expect("hub lock");
        for c in conns.get(&user).into_iter().flatten() {
            if Some(c.device) != except {
                // Full or closed: the device's feed recovers items from the store.
                let _ = c.tx.try_send(push.clone());
            }
        }
    }

    /// Every device checks the store for items it may have missed.
    pub fn resync_all(&self) {
        let conns = self.conns.read().expect("hub lock");
        for c in conns.values().flatten() {
            let _ = c.tx.try_send(Push::Resync);
        }
    }

    pub fn is_connected(&self, user: UserId) -> bool {
        self.conns.read().expect("hub lock").contains_key(&user)
    }
}
