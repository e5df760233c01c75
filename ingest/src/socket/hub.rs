//! The devices connected to this edge, by user: where pushes land. In
//! one process the sequencers push here directly (the hub is their
//! [`Pusher`]); in a cluster, pushes come as mail ([`run_mailbox`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use parley_engines::push::{self, Push, Pusher};
use parley_engines::telemetry::emit;
use parley_engines::Mail;
use parley_schemas::ids::{DeviceId, UserId};
use tokio::sync::mpsc;

use crate::internal_events::EdgeTrouble;

/// Queue depth per device, and the bytes its queue may hold. A device
/// that falls this far behind (a slow reader) loses live pushes, not
/// messages: its feed reads them from the store once it catches up.
const QUEUE: usize = 1024;
pub const QUEUE_BYTES: usize = 64 * 1024;

/// What a queued `status`, `typing` or `presence` frame is counted as.
const FRAME_WEIGHT: usize = 256;

struct Conn {
    id: u64,
    device: DeviceId,
    tx: mpsc::Sender<(Instant, Push)>,
    lane: Arc<Lane>,
}

/// The bytes a device's queue holds, and whether a push was dropped.
#[derive(Default)]
struct Lane {
    bytes: AtomicUsize,
    missed: AtomicBool,
}

fn weight(push: &Push) -> usize {
    match push {
        Push::Item { msg, .. } => msg.weight(),
        Push::Frame(_) => FRAME_WEIGHT,
        Push::Resync | Push::SignedOut(_) => 0,
    }
}

/// A device's end of its queue.
pub struct Pushes {
    rx: mpsc::Receiver<(Instant, Push)>,
    lane: Arc<Lane>,
    /// When the push taken last reached the hub.
    queued: Option<Instant>,
}

impl Pushes {
    pub async fn recv(&mut self) -> Option<Push> {
        let push = self.rx.recv().await?;
        Some(self.taken(push))
    }

    /// A push if one is queued now.
    pub fn try_recv(&mut self) -> Option<Push> {
        let push = self.rx.try_recv().ok()?;
        Some(self.taken(push))
    }

    /// Frees a push's bytes of the lane's budget.
    fn taken(&mut self, (at, push): (Instant, Push)) -> Push {
        self.lane.bytes.fetch_sub(weight(&push), Ordering::Relaxed);
        self.queued = Some(at);
        push
    }

    /// How long ago the push taken last reached the hub: in one process,
    /// when its sequencer stored it.
    pub fn waited(&self) -> Duration {
        self.queued.map_or(Duration::ZERO, |at| at.elapsed())
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Whether pushes were dropped since the last call: the store has
    /// items this device was not told about.
    pub fn missed(&self) -> bool {
        self.lane.missed.swap(false, Ordering::Relaxed)
    }
}

impl Conn {
    fn offer(&self, push: &Push, at: Instant) {
        let w = weight(push);
        let held = self.lane.bytes.fetch_add(w, Ordering::Relaxed);
        if held + w > QUEUE_BYTES.max(w) || self.tx.try_send((at, push.clone())).is_err() {
            self.lane.bytes.fetch_sub(w, Ordering::Relaxed);
            self.lane.missed.store(true, Ordering::Relaxed);
        }
    }
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

    pub fn register(self: &Arc<Self>, user: UserId, device: DeviceId) -> (Registration, Pushes) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let lane = Arc::new(Lane::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns
            .write()
            .expect("hub lock")
            .entry(user)
            .or_default()
            .push(Conn {
                id,
                device,
                tx,
                lane: lane.clone(),
            });
        (
            Registration {
                hub: self.clone(),
                user,
                id,
            },
            Pushes {
                rx,
                lane,
                queued: None,
            },
        )
    }

    /// Queues `push` for every connected device of `user` but `except`.
    pub fn push(&self, user: UserId, push: &Push, except: Option<DeviceId>) {
        self.push_at(user, push, except, Instant::now());
    }

    fn push_at(&self, user: UserId, push: &Push, except: Option<DeviceId>, at: Instant) {
        let conns = self.conns.read().expect("hub lock");
        for c in conns.get(&user).into_iter().flatten() {
            let wanted = match push {
                Push::SignedOut(device) => c.device == *device,
                _ => Some(c.device) != except,
            };
            if wanted {
                c.offer(push, at);
            }
        }
    }

    /// Every device checks the store for items it may have missed.
    pub fn resync_all(&self) {
        let conns = self.conns.read().expect("hub lock");
        let now = Instant::now();
        for c in conns.values().flatten() {
            c.offer(&Push::Resync, now);
        }
    }

    pub fn is_connected(&self, user: UserId) -> bool {
        self.conns.read().expect("hub lock").contains_key(&user)
    }
}

/// In one process: straight to the local sockets.
impl Pusher for Hub {
    fn deliver(&self, pushes: Vec<(UserId, Push)>) {
        let now = Instant::now();
        for (user, push) in &pushes {
            self.push_at(*user, push, None, now);
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
