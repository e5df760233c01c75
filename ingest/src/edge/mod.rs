//! What the edge does with a client's requests, shared by HTTP and
//! WebSocket. One part per concern, each holding only what it needs; HTTP
//! and WebSocket reach them through [`Edge`]'s methods.
//!
//! Layout:
//! - [`core`]: what every part shares: appending to the log, waiting for a
//!   job to apply a change, who exists, who may see a conversation.
//! - [`messages`]: sends (validated, then appended by the partition's
//!   appender, or forwarded to the edge that holds it) and receipts;
//!   [`appender`]: the per-partition task that issues `msg_id`s in log
//!   order and makes resends idempotent; [`backlog`]: how far behind
//!   delivery is, and the rule that refuses sends past a bound.
//! - [`actions`]: what a send says about other messages (edits,
//!   deletions, reactions, replies, forwards), judged before it is
//!   appended.
//! - [`accounts`]: sign-up, sign-in, devices and profiles.
//! - [`groups`]: create, change and read groups.
//! - [`contacts`]: contact lists and the presence privacy setting.
//! - [`presence`]: heartbeats, typing, presence as a viewer may see it.
//! - [`sockets`]: what a WebSocket needs of the edge: its registration in
//!   the hub and the session registry, and its device's feed.
//! - [`history`]: scrollback, search and the conversation list, members
//!   only, with later actions folded in ([`parley_schemas::wire::fold`]).
//! - [`keys`]: the key directory for end-to-end encryption.
//! - [`export`]: the caller's data as one archive (GDPR); [`erase`]:
//!   account deletion.
//! - [`notify`]: push subscriptions, notification settings and mutes.
//! - [`media`]: uploads into the blob store, and who may fetch or send
//!   them; [`resumable`]: uploads in chunks that survive a cut
//!   connection.

pub mod accounts;
pub mod actions;
pub mod appender;
pub mod backlog;
pub mod contacts;
pub mod core;
pub mod erase;
pub mod export;
pub mod groups;
pub mod history;
pub mod keys;
pub mod media;
pub mod messages;
pub mod notify;
pub mod presence;
pub mod quota;
pub mod reports;
pub mod resumable;
pub mod sessions;
pub mod sockets;

use std::future::Future;
use std::sync::Arc;

use parley_engines::push::Pusher;
use parley_engines::{BlobStore, Cluster, EngineError, History, Log, StateStore};
use parley_schemas::ids::MessageIdGenerator;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AuthConfig, Caller};
use crate::error::ApiError;
use crate::guard::Guard;
use crate::limits::Limits;
use crate::socket::hub::Hub;

pub use self::accounts::Accounts;
pub use self::contacts::Contacts;
pub use self::core::{Access, Core};
pub use self::groups::Groups;
pub use self::history::HistoryReads;
pub use self::keys::Keys;
pub use self::media::Media;
pub use self::messages::{Messages, APPEND_SCOPE, FORWARDED, GROUP};
pub use self::notify::Notifications;
pub use self::presence::PresenceAndTyping;
pub use self::sessions::Sessions;
pub use self::sockets::{Sockets, SESSION_TTL};

/// What an edge is built from.
pub struct EdgeParts {
    pub log: Arc<dyn Log>,
    pub state: Arc<dyn StateStore>,
    pub hub: Arc<Hub>,
    pub auth: AuthConfig,
    pub ids: Arc<MessageIdGenerator>,
    /// The partition count of every topic.
    pub partitions: u32,
    pub cluster: Arc<dyn Cluster>,
    /// Scrollback and conversation lists.
    pub history: Arc<dyn History>,
    /// Media bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Where typing notices go: the local hub in one process, the session
    /// registry in a cluster.
    pub pusher: Arc<dyn Pusher>,
    pub limits: Limits,
    /// Sign-in by an outside identity provider (`[idp]`), if configured.
    pub idp: Option<Arc<crate::idp::Idp>>,
    /// What the deployment keeps of messages (`retention.mode`).
    pub retention: parley_schemas::retention::RetentionMode,
    /// The Web Push (VAPID) public key browsers subscribe with, when on.
    pub vapid_public: Option<String>,
    /// Web Push endpoints on addresses that are not public are taken
    /// (`notify.webpush_private_endpoints`).
    pub push_private_endpoints: bool,
}

/// One edge node: its parts, and the tasks that hold its engines.
pub struct Edge {
    /// Kept for its health, which `/readyz` reports.
    log: Arc<dyn Log>,
    core: Arc<Core>,
    guard: Arc<Guard>,
    sessions: Arc<Sessions>,
    messages: Messages,
    accounts: Accounts,
    groups: Groups,
    contacts: Contacts,
    reports: reports::Reports,
    /// Account exports per user per hour.
    exports: crate::guard::Throttle<parley_schemas::ids::UserId>,
    presence: PresenceAndTyping,
    sockets: Sockets,
    history: HistoryReads,
    media: Media,
    keys: Arc<Keys>,
    notifications: Arc<Notifications>,
    /// Every task that holds an engine: appenders and sockets.
    tasks: TaskTracker,
    /// Cancelled at shutdown: sockets close, appenders drain.
    stop: CancellationToken,
}

impl Edge {
    /// An edge with no appender yet: start them with [`Edge::run_appender`].
    pub fn new(parts: EdgeParts) -> Arc<Edge> {
        let node = parts.ids.node() as u32;
        parley_engines::telemetry::emit(crate::internal_events::SocketLimit {
            sockets: parts.limits.sockets,
        });
        let log = parts.log.clone();
        let until_delivered =
            parts.retention == parley_schemas::retention::RetentionMode::UntilDelivered;
        let core = Arc::new(Core::new(parts.log, parts.state.clone(), parts.partitions));
        let auth = Arc::new(parts.auth);
        let backlog = Arc::new(backlog::Backlog::new(parts.limits.shed_behind_ms));
        let actions = actions::Actions::new(core.clone(), &parts.limits);
        let guard = Arc::new(Guard::new(parts.limits));
        let keys = Arc::new(Keys::new(core.clone(), guard.clone(), parts.pusher.clone()));
        let notifications = Arc::new(Notifications::new(
            core.clone(),
            guard.limits.push_subscriptions_per_user,
            (
                guard.limits.push_http_endpoints,
                parts.push_private_endpoints,
            ),
            parts.vapid_public.clone(),
            parts.pusher.clone(),
        ));
        let sessions = Arc::new(Sessions::new(
            core.clone(),
            auth.clone(),
            parts.pusher.clone(),
            keys.clone(),
            notifications.clone(),
            guard.clone(),
        ));
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        tasks.spawn({
            let (b, log, state) = (backlog.clone(), log.clone(), parts.state.clone());
            let (partitions, stop) = (parts.partitions, stop.clone());
            async move { b.watch(log, state, partitions, stop).await }
        });
        let sockets = Sockets::new(
            parts.state,
            parts.cluster.clone(),
            parts.hub,
            node,
            tasks.clone(),
            stop.clone(),
            until_delivered,
        );
        Arc::new(Edge {
            messages: Messages::new(
                core.clone(),
                actions,
                parts.ids.clone(),
                parts.cluster,
                auth.clone(),
                backlog,
                tasks.clone(),
                stop.clone(),
            ),
            accounts: Accounts::new(
                core.clone(),
                auth.clone(),
                guard.clone(),
                sessions.clone(),
                parts.idp.clone(),
            ),
            groups: Groups::new(core.clone(), parts.ids),
            contacts: Contacts::new(core.clone()),
            reports: reports::Reports::new(core.clone()),
            exports: export::throttle(),
            presence: PresenceAndTyping::new(core.clone(), parts.pusher),
            media: Media::new(core.clone(), parts.blobs, guard.clone(), until_delivered),
            history: HistoryReads::new(core.clone(), parts.history, until_delivered),
            core,
            sockets,
            keys,
            notifications,
            log,
            guard,
            sessions,
            tasks,
            stop,
        })
    }

    /// The caller an access token names, or `unauthorized`.
    pub async fn verify_token(&self, token: &str) -> Result<Caller, ApiError> {
        self.sessions.verify_access(token).await
    }

    /// Whether the log takes appends (see [`Log::healthy`]).
    pub fn log_healthy(&self) -> Result<(), EngineError> {
        self.log.healthy()
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The rate limits and caps checked per request.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
    pub fn limits(&self) -> &Limits {
        &self.guard.limits
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }
    pub fn notifications(&self) -> &Notifications {
        &self.notifications
    }
    pub fn messages(&self) -> &Messages {
        &self.messages
    }
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }
    pub fn groups(&self) -> &Groups {
        &self.groups
    }
    pub fn contacts(&self) -> &Contacts {
        &self.contacts
    }
    pub fn presence(&self) -> &PresenceAndTyping {
        &self.presence
    }
    pub fn sockets(&self) -> &Sockets {
        &self.sockets
    }
    pub fn history(&self) -> &HistoryReads {
        &self.history
    }

    /// `POST /v1/reports`.
    pub async fn report(
        &self,
        caller: Caller,
        req: parley_schemas::wire::ReportRequest,
    ) -> Result<parley_schemas::wire::ReportCreated, ApiError> {
        self.reports.file(caller, req, &self.history).await
    }
    pub fn media(&self) -> &Media {
        &self.media
    }

    /// This node's id (that of its msg_id generator).
    pub fn node(&self) -> u32 {
        self.sockets.node()
    }

    /// Runs the appender of `events` partition `p` until `stop` (or the
    /// edge's shutdown), then answers what it holds. Fails only if the log
    /// cannot be read at takeover.
    pub async fn run_appender(&self, p: u32, stop: CancellationToken) -> Result<(), EngineError> {
        self.messages.run_appender(p, stop).await
    }

    /// Runs `task` among the edge's tasks: shutdown waits for it, and it
    /// should end once [`stopping`](Self::stopping) fires.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Cancelled when the edge shuts down.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Closes every socket, lets the appenders answer what they hold, and
    /// waits until no task of the edge holds an engine any more.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
