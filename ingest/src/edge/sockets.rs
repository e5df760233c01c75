//! What a WebSocket needs of the edge: its device in the hub (where local
//! pushes land), its user in the session registry (where delivery nodes
//! look for the edge holding a user's sockets), and its device's feed.

use std::sync::Arc;
use std::time::Duration;

use parley_engines::push::Push;
use parley_engines::{Cluster, StateStore};
use parley_schemas::ids::{DeviceId, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::socket::feed::Feed;
use crate::socket::hub::{Hub, Registration};

/// How long a session registry entry lives without a refresh.
pub const SESSION_TTL: Duration = Duration::from_secs(90);

pub struct Sockets {
    state: Arc<dyn StateStore>,
    cluster: Arc<dyn Cluster>,
    hub: Arc<Hub>,
    node: u32,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Sockets {
    pub fn new(
        state: Arc<dyn StateStore>,
        cluster: Arc<dyn Cluster>,
        hub: Arc<Hub>,
        node: u32,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Sockets {
        Sockets {
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

    /// Held while a socket lives: shutdown waits until every one is gone.
    pub fn track(&self) -> TaskTrackerToken {
        self.tasks.token()
    }

    /// Resolves when the edge shuts down: sockets close.
    pub fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// Registers a device in the hub; dropping the registration removes it.
    pub fn register(&self, user: UserId, device: DeviceId) -> (Registration, mpsc::Receiver<Push>) {
        self.hub.register(user, device)
    }

    /// A device's feed, starting at its user's inbox head now.
    pub async fn feed(&self, user: UserId, device: DeviceId) -> Result<Feed, ApiError> {
        Ok(Feed::open(self.state.clone(), user, device).await?)
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
