//! What a WebSocket needs of the edge: its device in the hub (where local
//! pushes land), its user in the session registry (where delivery nodes
//! look for the edge holding a user's sockets), and its device's feed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parley_engines::telemetry::emit;

use parley_engines::{Cluster, StateStore};
use parley_schemas::ids::{DeviceId, UserId};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::internal_events::{Limit, LimitHit};
use crate::limits::Limits;
use crate::socket::feed::Feed;
use crate::socket::hub::{Hub, Pushes, Registration};

/// The sockets admitted on this edge, in all and per user. Counted at the
/// upgrade, not at the hub registration that follows it, so concurrent
/// upgrades cannot all pass the same check.
#[derive(Default)]
struct Admitted {
    total: AtomicUsize,
    per_user: Mutex<HashMap<UserId, usize>>,
}

/// One admitted socket's place under the edge's caps.
pub struct SocketSlot {
    admitted: Arc<Admitted>,
    user: UserId,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.admitted.total.fetch_sub(1, Ordering::Relaxed);
        let mut per_user = self.admitted.per_user.lock().expect("admitted lock");
        if let Some(n) = per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}

/// How long a session registry entry lives without a refresh.
pub const SESSION_TTL: Duration = Duration::from_secs(90);

pub struct Sockets {
    admitted: Arc<Admitted>,
    state: Arc<dyn StateStore>,
    cluster: Arc<dyn Cluster>,
    hub: Arc<Hub>,
    node: u32,
    tasks: TaskTracker,
    stop: CancellationToken,
    /// `until_delivered`: feeds delete what every device confirmed.
    delete_delivered: bool,
    /// The MQTT connection of each device here: a new one takes over.
    mqtt: Arc<MqttClaims>,
}

type Device = (UserId, DeviceId);

#[derive(Default)]
struct MqttClaims {
    next: AtomicUsize,
    held: Mutex<HashMap<Device, (usize, CancellationToken)>>,
}

/// An MQTT connection's hold on its device at this edge; cancelled when
/// another connection of the device takes over (MQTT-3.1.4-2).
pub struct MqttClaim {
    pub taken_over: CancellationToken,
    key: Device,
    id: usize,
    claims: Arc<MqttClaims>,
}

impl Drop for MqttClaim {
    fn drop(&mut self) {
        let mut held = self.claims.held.lock().expect("mqtt claims lock");
        // Only its own entry: a successor's stays.
        if held.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            held.remove(&self.key);
        }
    }
}

impl Sockets {
    pub fn new(
        state: Arc<dyn StateStore>,
        cluster: Arc<dyn Cluster>,
        hub: Arc<Hub>,
        node: u32,
        tasks: TaskTracker,
        stop: CancellationToken,
        delete_delivered: bool,
    ) -> Sockets {
        Sockets {
            delete_delivered,
            mqtt: Arc::default(),
            admitted: Arc::default(),
            state,
            cluster,
            hub,
            node,
            tasks,
            stop,
        }
    }

    pub fn node(&self) -> u32 {
        self.node
    }

    /// A place for one more socket of `user`, within the edge's caps; the
    /// place is freed when the slot drops.
    pub fn admit(&self, user: UserId, limits: &Limits) -> Result<SocketSlot, ApiError> {
        let refuse = |limit: Limit, what: &str| {
            emit(LimitHit { limit });
            Err(ApiError::rate_limited(
                what.to_owned(),
                Duration::from_secs(5),
            ))
        };
        let mut per_user = self.admitted.per_user.lock().expect("admitted lock");
        if per_user.get(&user).copied().unwrap_or(0) >= limits.sockets_per_user {
            return refuse(
                Limit::SocketsPerUser,
                "too many open sockets for this user; close one",
            );
        }
        if self.admitted.total.fetch_add(1, Ordering::Relaxed) >= limits.sockets {
            self.admitted.total.fetch_sub(1, Ordering::Relaxed);
            return refuse(Limit::Sockets, "this edge is full; try another or later");
        }
        *per_user.entry(user).or_default() += 1;
        Ok(SocketSlot {
            admitted: self.admitted.clone(),
            user,
        })
    }

    /// `device`'s MQTT connection here from now on: the one before it, if
    /// any, is told to end.
    pub fn claim_mqtt(&self, user: UserId, device: DeviceId) -> MqttClaim {
        let id = self.mqtt.next.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut held = self.mqtt.held.lock().expect("mqtt claims lock");
        if let Some((_, before)) = held.insert((user, device), (id, token.clone())) {
            before.cancel();
        }
        MqttClaim {
            taken_over: token,
            key: (user, device),
            id,
            claims: self.mqtt.clone(),
        }
    }

    /// Held while a socket lives: shutdown waits until every one is gone.
    pub fn track(&self) -> TaskTrackerToken {
        self.tasks.token()
    }

    /// Resolves when the edge shuts down: sockets close.
    pub fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// Registers a device in the hub; dropping the registration removes it.
    pub fn register(&self, user: UserId, device: DeviceId) -> (Registration, Pushes) {
        self.hub.register(user, device)
    }

    /// A device's feed, starting after what it confirmed.
    pub async fn feed(
        &self,
        user: UserId,
        device: DeviceId,
        backlog_to: Option<u64>,
    ) -> Result<Feed, ApiError> {
        Ok(Feed::open(self.state.clone(), user, device, backlog_to)
            .await?
            .deleting_delivered(self.delete_delivered))
    }

    /// `user`'s newest inbox seq: read before a socket is accepted, it is
    /// where the device's backlog ends and live items begin.
    pub async fn inbox_seq(&self, user: UserId) -> Result<u64, ApiError> {
        Ok(self.state.inbox_seq(user).await?)
    }

    /// A socket of `user` opened on this edge: pushes find it from now on.
    /// Called again to refresh the entry while the socket lives.
    pub async fn session_open(&self, user: UserId) -> Result<(), ApiError> {
        Ok(self
            .cluster
            .session_add(user, self.node, SESSION_TTL)
            .await?)
    }

    /// A socket of `user` closed; the entry goes once none is left here.
    pub async fn session_closed(&self, user: UserId) {
        if self.hub.is_connected(user) {
            return;
        }
        let _ = self.cluster.session_remove(user, self.node).await;
        // A device that connected meanwhile keeps its entry.
        if self.hub.is_connected(user) {
            let _ = self.session_open(user).await;
        }
    }
}
