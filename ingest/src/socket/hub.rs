//! The devices connected to this edge, by user: where pushes land. In
//! one process the sequencers push here directly (the hub is their
//! [`Pusher`]); in a cluster, pushes come as mail ([`run_mailbox`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use parley_engines::push::{self, Push, Pusher};
use parley_engines::telemetry::emit;
use parley_engines::Mail;
use parley_schemas::ids::{DeviceId, UserId};
use tokio::sync::mpsc;

use crate::internal_events::EdgeTrouble;

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

/// In one process: straight to the local sockets.
impl Pusher for Hub {
    fn deliver(&self, pushes: Vec<(UserId, Push)>) {
        for (user, push) in &pushes {
            self.push(*user, push, None);
        }
    }
}

/// Hands this edge's mail to its sockets until the mailbox closes.
pub async fn run_mailbox(mut mail: mpsc::Receiver<Mail>, hub: Arc<Hub>) {
    while let Some(m) = mail.recv().await {
        match m {
            Mail::Message(bytes) => match push::decode(&bytes) {
                Ok(pushes) => hub.deliver(pushes),
                Err(e) => emit(EdgeTrouble::MailUndecodable { error: &e }),
            },
            Mail::Gap => hub.resync_all(),
        }
    }
}
