//! What the edge does with a client's frames, shared by HTTP and WebSocket.
//!
//! Sends go through one [`Appender`] task per `events` partition. It takes
//! every send waiting, issues their `msg_id`s and appends them as one batch,
//! with at most one batch in flight. So ids rise in log order within a
//! partition (the protocol's "a later append has a larger msg_id" within a
//! conversation), and a resend of a `client_msg_id` always finds the first
//! send's id: either already appended (in the task's recent map or the
//! state store) or in the batch being built.
//!
//! With several edges, each `events` partition has one appender in the
//! whole cluster: the edge holding the partition's lease
//! ([`APPEND_SCOPE`]). Another edge forwards the send to it over HTTP
//! (`POST /v1/messages` with the caller's identity and [`FORWARDED`]), so
//! the order above holds cluster-wide. An appender that takes a partition
//! over first reads the log's tail: the previous owner's recent ids keep
//! resends idempotent, and ids continue above the last one issued.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use parley_delivery::hub::{Hub, Push};
use parley_delivery::route::Pusher;
use parley_engines::cluster::lease_name;
use parley_engines::history::MAX_PAGE;
use parley_engines::{Cluster, EngineError, History, Log, ReadLimit, StateOp, StateStore};
use parley_schemas::codec;
use parley_schemas::event::{
    AccountCreated, ContactChanged, DeviceAdded, Event, GroupEvent, Heartbeat, MessageSent,
    PrivacySet, ProfileUpdated, Receipt,
};
use parley_schemas::group::{GroupChange, GroupState, Refused};
use parley_schemas::ids::{
    now_ms, ConversationId, DeviceId, GroupId, MessageId, MessageIdGenerator, UserId,
};
use parley_schemas::partition::{conversation_partition, user_partition};
use parley_schemas::topics;
use parley_schemas::wire::{
    Ack, Audience, Body, Contact, ContactList, ConversationEntry, CreateGroup, ErrorBody,
    ErrorCode, GroupCreated, GroupInfo, GroupMember, MsgFrame, PresenceFrame, Privacy, Profile,
    ProfilePatch, ReceiptFrame, Recipient, SendFrame, ServerFrame, TypingNotice, DEFAULT_PAGE,
    MAX_CLIENT_MSG_ID_CHARS, MAX_TEXT_BYTES, RESEND_WINDOW_MS,
};
use prometheus::{register_int_counter, IntCounter};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AuthConfig, Caller};
use crate::error::ApiError;

static APPENDS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "parley_appends_records_total",
        "Records durably appended by the edge"
    )
    .expect("metric registers once")
});

/// The group of edge nodes in the cluster.
pub const GROUP: &str = "ingest";
/// Leases on `events` partitions: the holder runs the partition's appender.
pub const APPEND_SCOPE: &str = "append/events";
/// Header of a send forwarded by another edge: never forwarded again.
pub const FORWARDED: &str = "x-parley-forwarded";
/// How long a session registry entry lives without a heartbeat.
pub const SESSION_TTL: Duration = Duration::from_secs(90);
/// Records at the end of a partition an appender reads when it takes
/// over, besides what the router has not consumed yet.
const TAIL_SCAN: u64 = 256;

/// Sends gathered into one append at most.
const MAX_BATCH: usize = 1024;
/// Recent `client_msg_id`s an appender remembers before asking the store.
const RECENT: usize = 100_000;

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
    /// Where typing notices go: the local hub in one process, the session
    /// registry in a cluster.
    pub pusher: Arc<dyn Pusher>,
}

/// Shared state of the edge.
pub struct Edge {
    pub log: Arc<dyn Log>,
    pub state: Arc<dyn StateStore>,
    pub hub: Arc<Hub>,
    pub auth: AuthConfig,
    pub cluster: Arc<dyn Cluster>,
    pub history: Arc<dyn History>,
    /// This node's id (that of its msg_id generator).
    pub node: u32,
    pusher: Arc<dyn Pusher>,
    ids: Arc<MessageIdGenerator>,
    partitions: u32,
    /// The appenders of the `events` partitions this edge holds.
    appenders: RwLock<HashMap<u32, mpsc::Sender<SendReq>>>,
    /// Other edges' addresses, by node.
    peers: RwLock<HashMap<u32, String>>,
    http: reqwest::Client,
    /// Users known to exist (accounts are never deleted), so a send checks
    /// its recipient without a store call.
    known_users: std::sync::RwLock<std::collections::HashSet<UserId>>,
    typing_limit: KeyedLimiter,
    typing_checks: std::sync::atomic::AtomicU64,
    /// Every task that holds an engine: appenders and sockets.
    pub tasks: TaskTracker,
    /// Cancelled at shutdown: sockets close, appenders drain.
    pub stop: CancellationToken,
}

struct SendReq {
    caller: Caller,
    conversation: ConversationId,
    frame: SendFrame,
    reply: oneshot::Sender<Result<Ack, ApiError>>,
}

impl Edge {
    /// An edge with no appender yet: start them with [`Edge::run_appender`].
    pub fn new(parts: EdgeParts) -> Arc<Edge> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .expect("an HTTP client without TLS builds");
        Arc::new(Edge {
            node: parts.ids.node() as u32,
            log: parts.log,
            state: parts.state,
            hub: parts.hub,
            auth: parts.auth,
            cluster: parts.cluster,
            history: parts.history,
            pusher: parts.pusher,
            ids: parts.ids,
            partitions: parts.partitions,
            appenders: Default::default(),
            peers: Default::default(),
            http,
            known_users: Default::default(),
            typing_limit: typing_limiter(),
            typing_checks: Default::default(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        })
    }

    /// Runs the appender of `events` partition `p` until `stop` (or the
    /// edge's shutdown), then answers what it holds. Fails only if the log
    /// cannot be read at takeover.
    pub async fn run_appender(
        self: Arc<Self>,
        p: u32,
        stop: CancellationToken,
    ) -> Result<(), EngineError> {
        let mut task = Appender {
            log: self.log.clone(),
            state: self.state.clone(),
            ids: self.ids.clone(),
            partition: p,
            recent: Recent::default(),
            tasks: self.tasks.clone(),
        };
        // Listed first, so sends queue while the tail is read rather than
        // being turned away.
        let (tx, mut rx) = mpsc::channel(4096);
        self.appenders.write().expect("appenders").insert(p, tx);
        if let Err(e) = task.recover().await {
            self.appenders.write().expect("appenders").remove(&p);
            rx.close();
            let err = ApiError::from(EngineError::Unavailable(format!(
                "partition {p} could not be taken over: {e}"
            )));
            while let Some(r) = rx.recv().await {
                let _ = r.reply.send(Err(err.clone()));
            }
            return Err(e);
        }
        task.run(&mut rx, &stop, &self.stop).await;
        // New sends go elsewhere from now on; those queued are answered.
        self.appenders.write().expect("appenders").remove(&p);
        task.drain(rx).await;
        Ok(())
    }

    /// Closes every socket, lets the appenders answer what they hold, and
    /// waits until no task of the edge holds an engine any more.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Validates and appends a message; the ack comes once it is durable.
    pub async fn send(&self, caller: Caller, frame: SendFrame) -> Result<Ack, ApiError> {
        self.send_with(caller, frame, true).await
    }

    /// As [`send`](Self::send); `may_forward` is false for a send another
    /// edge forwarded here.
    pub async fn send_with(
        &self,
        caller: Caller,
        frame: SendFrame,
        may_forward: bool,
    ) -> Result<Ack, ApiError> {
        validate_send(&frame)?;
        let conversation = match frame.to {
            Recipient::User(to) => {
                self.require_user(to).await?;
                ConversationId::direct(caller.user, to)
            }
            Recipient::Group(g) => {
                let c = ConversationId::group(g);
                self.access(caller.user, &c, true).await?;
                c
            }
        };
        let p = conversation_partition(&conversation, self.partitions);
        let local = self.appenders.read().expect("appenders").get(&p).cloned();
        let frame = match local {
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                let req = SendReq {
                    caller,
                    conversation,
                    frame,
                    reply,
                };
                match tx.send(req).await {
                    Ok(()) => {
                        return rx.await.map_err(|_| {
                            ApiError::new(ErrorCode::Unavailable, "the edge is shutting down")
                        })?
                    }
                    // The partition left this edge just now.
                    Err(mpsc::error::SendError(req)) => req.frame,
                }
            }
            None => frame,
        };
        if !may_forward {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("partition {p} is moving between edges; retry"),
            ));
        }
        self.forward(p, caller, frame).await
    }

    /// Hands a send to the edge that holds its partition, and returns that
    /// edge's answer as if it were ours.
    async fn forward(&self, p: u32, caller: Caller, frame: SendFrame) -> Result<Ack, ApiError> {
        let moving = || {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("partition {p} is moving between edges; retry"),
            )
        };
        let node = self
            .cluster
            .holder(&lease_name(APPEND_SCOPE, p))
            .await?
            .filter(|n| *n != self.node)
            .ok_or_else(moving)?;
        let addr = self.peer(node).await?.ok_or_else(moving)?;
        let sent = self
            .http
            .post(format!("http://{addr}/v1/messages"))
            .bearer_auth(self.auth.issue(caller))
            .header(FORWARDED, "1")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&frame).expect("send frames serialize"))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                // Its address may be stale; ask again next time.
                self.peers.write().expect("peers").remove(&node);
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    format!("edge {node} did not answer: {e}"),
                ));
            }
        };
        let ok = resp.status().is_success();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("edge {node}: {e}")))?;
        if ok {
            serde_json::from_slice(&body)
                .map_err(|e| ApiError::new(ErrorCode::Internal, format!("edge {node}: {e}")))
        } else {
            let e: ErrorBody = serde_json::from_slice(&body)
                .map_err(|e| ApiError::new(ErrorCode::Internal, format!("edge {node}: {e}")))?;
            Err(ApiError::new(e.code, e.message))
        }
    }

    async fn peer(&self, node: u32) -> Result<Option<String>, ApiError> {
        if let Some(a) = self.peers.read().expect("peers").get(&node) {
            return Ok(Some(a.clone()));
        }
        let members = self.cluster.members(GROUP).await?;
        let mut peers = self.peers.write().expect("peers");
        for m in members.into_iter().filter(|m| !m.addr.is_empty()) {
            peers.insert(m.node, m.addr);
        }
        Ok(peers.get(&node).cloned())
    }

    /// Registers a user: the store takes the username (unique at once),
    /// then the log records the account, so a lost store gets it back.
    /// `None` if the username is taken.
    pub async fn create_account(
        &self,
        username: &str,
        password_hash: String,
        display_name: String,
    ) -> Result<Option<UserId>, ApiError> {
        let Some(user) = self
            .state
            .create_account(username, &password_hash, &display_name)
            .await?
        else {
            return Ok(None);
        };
        let event = Event::AccountCreated(AccountCreated {
            user,
            username: username.to_owned(),
            password_hash,
            display_name,
            ts: now_ms(),
        });
        self.append_account(user, &event).await?;
        Ok(Some(user))
    }

    /// A new device id for `user`, recorded in the log as well.
    pub async fn new_device(&self, user: UserId) -> Result<DeviceId, ApiError> {
        let device = self.state.new_device(user).await?;
        let event = Event::DeviceAdded(DeviceAdded {
            user,
            device,
            ts: now_ms(),
        });
        self.append_account(user, &event).await?;
        Ok(device)
    }

    /// Changes `user`'s profile: the change goes to the log (from which the
    /// accounts job derives profiles) and, once durable, to the store, so
    /// the caller reads its own change at once. Returns the new profile.
    pub async fn update_profile(
        &self,
        user: UserId,
        patch: ProfilePatch,
    ) -> Result<Profile, ApiError> {
        validate_profile(&patch)?;
        let event = Event::ProfileUpdated(ProfileUpdated {
            user,
            display_name: patch.display_name,
            about: patch.about,
            avatar_media_id: patch.avatar_media_id,
            ts: now_ms(),
        });
        self.append_account(user, &event).await?;
        let Event::ProfileUpdated(u) = event else {
            unreachable!("built above")
        };
        self.state
            .write(vec![StateOp::SetProfile {
                user,
                display_name: u.display_name,
                about: u.about,
                avatar_media_id: u.avatar_media_id,
            }])
            .await?;
        self.profile(user).await
    }

    pub async fn profile(&self, user: UserId) -> Result<Profile, ApiError> {
        let a = self
            .state
            .account(user)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no user {user}")))?;
        Ok(Profile {
            user_id: a.user_id,
            username: a.username,
            display_name: a.display_name,
            about: a.about,
            avatar_media_id: a.avatar_media_id,
        })
    }

    /// A socket of `user` opened on this edge: pushes find it from now on.
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

    /// `not_found` unless `user` exists (accounts are never deleted, so
    /// users once found are remembered).
    pub async fn require_user(&self, user: UserId) -> Result<(), ApiError> {
        if self
            .known_users
            .read()
            .expect("known users")
            .contains(&user)
        {
            return Ok(());
        }
        let exists = self.state.account(user).await?.is_some();
        if exists {
            let mut known = self.known_users.write().expect("known users");
            // Bounded: past this, recipients are checked in the store again.
            if known.len() < 1_000_000 {
                known.insert(user);
            }
            Ok(())
        } else {
            Err(ApiError::not_found(format!("no user {user}")))
        }
    }

    /// A cumulative delivered/read receipt from a member of the conversation.
    pub async fn receipt(&self, caller: Caller, r: ReceiptFrame) -> Result<(), ApiError> {
        self.access(caller.user, &r.conversation_id, true).await?;
        let event = Event::Receipt(Receipt {
            conversation: r.conversation_id,
            by: caller.user,
            device: caller.device,
            up_to: r.msg_id,
            status: r.status,
            ts: now_ms(),
        });
        let p = conversation_partition(&r.conversation_id, self.partitions);
        self.append(topics::EVENTS, p, &event).await
    }

    pub async fn heartbeat(
        &self,
        caller: Caller,
        active: bool,
        closing: bool,
    ) -> Result<(), ApiError> {
        let event = Event::Heartbeat(Heartbeat {
            user: caller.user,
            device: caller.device,
            active,
            closing,
            ts: now_ms(),
        });
        self.append(
            topics::PRESENCE,
            user_partition(caller.user, self.partitions),
            &event,
        )
        .await
    }

    /// Ephemeral: straight to the other members' connected devices, never
    /// to the log. Limited per user ([`TYPING_PER_SECOND`]).
    pub async fn typing(
        &self,
        caller: Caller,
        conversation: ConversationId,
    ) -> Result<(), ApiError> {
        // Users who stopped typing are forgotten now and then, so the
        // limiter's memory follows the users typing lately.
        if self
            .typing_checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 10_000
            == 9_999
        {
            self.typing_limit.retain_recent();
        }
        if self.typing_limit.check_key(&caller.user).is_err() {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("at most {TYPING_PER_SECOND} typing frames a second"),
            ));
        }
        let frame = Arc::new(ServerFrame::Typing(TypingNotice {
            conversation_id: conversation,
            user_id: caller.user,
        }));
        let to: Vec<UserId> = match self.access(caller.user, &conversation, true).await? {
            Access::Direct => conversation.peer_of(caller.user).into_iter().collect(),
            Access::Group(state) => state
                .current_members()
                .map(|m| m.user)
                .filter(|u| *u != caller.user)
                .collect(),
        };
        let pushes = to
            .into_iter()
            .map(|u| (u, Push::Frame(frame.clone())))
            .collect();
        self.pusher.deliver(pushes);
        Ok(())
    }

    /// What `user` may see of `conversation`, or why not: `forbidden` to
    /// a non-member (and, with `now`, to a former member), `not_found` for
    /// a group that does not exist.
    pub async fn access(
        &self,
        user: UserId,
        conversation: &ConversationId,
        now: bool,
    ) -> Result<Access, ApiError> {
        match conversation {
            ConversationId::Direct { .. } if conversation.is_direct_member(user) => {
                Ok(Access::Direct)
            }
            ConversationId::Direct { .. } => {
                Err(ApiError::forbidden("not a member of this conversation"))
            }
            ConversationId::Group(g) => {
                let state = self.group_state(*g).await?;
                match state.entry(user) {
                    Some(m) if m.is_current() || !now => Ok(Access::Group(state)),
                    Some(_) => Err(ApiError::forbidden("no longer a member of this group")),
                    None => Err(ApiError::forbidden("not a member of this group")),
                }
            }
        }
    }

    async fn group_state(&self, g: GroupId) -> Result<GroupState, ApiError> {
        self.state
            .group(g)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no group {g}")))
    }

    /// Creates a group with the caller as its admin.
    pub async fn create_group(
        &self,
        caller: Caller,
        req: CreateGroup,
    ) -> Result<GroupCreated, ApiError> {
        for u in &req.members {
            self.require_user(*u).await?;
        }
        let ts = now_ms();
        GroupState::create(caller.user, &req.name, &req.members, ts).map_err(refusal)?;
        let group = GroupId(self.ids.next_id().0);
        let change = GroupChange::Created {
            name: req.name,
            members: req.members,
        };
        self.log_group_change(group, caller.user, change, ts)
            .await?;
        Ok(GroupCreated {
            group_id: group,
            conversation_id: ConversationId::group(group),
        })
    }

    /// Adds, removes (or leaves) or renames, if the caller may; returns
    /// the group as it is after the change.
    pub async fn change_group(
        &self,
        caller: Caller,
        group: GroupId,
        change: GroupChange,
    ) -> Result<GroupInfo, ApiError> {
        if let GroupChange::Added(u) = &change {
            self.require_user(*u).await?;
        }
        let mut state = self.group_state(group).await?;
        if state.entry(caller.user).is_none() {
            return Err(ApiError::forbidden("not a member of this group"));
        }
        state.apply(caller.user, &change).map_err(refusal)?;
        self.log_group_change(group, caller.user, change, now_ms())
            .await?;
        Ok(group_info(group, &state))
    }

    /// The group and its current members, to a current member.
    pub async fn group_info(&self, caller: Caller, group: GroupId) -> Result<GroupInfo, ApiError> {
        match self
            .access(caller.user, &ConversationId::group(group), true)
            .await?
        {
            Access::Group(state) => Ok(group_info(group, &state)),
            Access::Direct => unreachable!("a group conversation"),
        }
    }

    /// Appends a group change to the group's partition and waits (up to
    /// [`APPLIED_WAIT`]) until the router has applied it, so the caller's
    /// next call sees it. Past that it is still durable and applies later.
    async fn log_group_change(
        &self,
        group: GroupId,
        by: UserId,
        change: GroupChange,
        ts: u64,
    ) -> Result<(), ApiError> {
        let c = ConversationId::group(group);
        let p = conversation_partition(&c, self.partitions);
        let event = Event::Group(GroupEvent {
            group,
            by,
            change,
            ts,
        });
        let offset = self.append_at(topics::EVENTS, p, &event).await?;
        self.wait_applied(parley_processors::router::JOB, p, offset)
            .await
    }

    /// Waits (up to [`APPLIED_WAIT`]) until `job` has applied `offset` of
    /// its partition `p`, so the caller's next call sees the change. Past
    /// that the change is still durable and applies later.
    async fn wait_applied(&self, job: &str, p: u32, offset: u64) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + APPLIED_WAIT;
        while tokio::time::Instant::now() < deadline {
            if self
                .state
                .job_offset(job, p)
                .await?
                .is_some_and(|o| o > offset)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tracing::warn!(
            job,
            partition = p,
            offset,
            "change durable but not applied yet"
        );
        Ok(())
    }

    /// Adds `contact` to `user`'s contact list, or removes it.
    pub async fn set_contact(
        &self,
        user: UserId,
        contact: UserId,
        added: bool,
    ) -> Result<(), ApiError> {
        if added {
            if contact == user {
                return Err(ApiError::bad_request(
                    "you cannot add yourself as a contact",
                ));
            }
            self.require_user(contact).await?;
            if self.state.contacts(user).await?.len() >= MAX_CONTACTS {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("at most {MAX_CONTACTS} contacts"),
                ));
            }
        }
        let event = Event::ContactChanged(ContactChanged {
            user,
            contact,
            added,
            ts: now_ms(),
        });
        self.log_account_change(user, &event).await
    }

    /// `user`'s contacts with their display names.
    pub async fn contacts(&self, user: UserId) -> Result<ContactList, ApiError> {
        let ids = self.state.contacts(user).await?;
        let accounts = futures::future::try_join_all(ids.iter().map(|u| self.state.account(*u)));
        let contacts = ids
            .iter()
            .zip(accounts.await?)
            .map(|(u, a)| Contact {
                user_id: *u,
                display_name: a.map(|a| a.display_name).unwrap_or_default(),
            })
            .collect();
        Ok(ContactList { contacts })
    }

    pub async fn set_privacy(&self, user: UserId, privacy: Privacy) -> Result<(), ApiError> {
        let event = Event::PrivacySet(PrivacySet {
            user,
            presence: privacy.presence,
            ts: now_ms(),
        });
        self.log_account_change(user, &event).await
    }

    /// `owner`'s presence as `viewer` may see it: hidden (offline, no last
    /// seen) unless the owner's setting lets the viewer see it.
    pub async fn presence(&self, viewer: UserId, owner: UserId) -> Result<PresenceFrame, ApiError> {
        self.require_user(owner).await?;
        let visible = viewer == owner || {
            let audience = self.state.privacy(owner).await?;
            let in_contacts = audience == Audience::Contacts
                && self.state.contacts(owner).await?.contains(&viewer);
            audience.allows(in_contacts)
        };
        if !visible {
            return Ok(PresenceFrame {
                user_id: owner,
                online: false,
                last_seen: None,
            });
        }
        let p = self.state.presence(owner).await?.unwrap_or_default();
        Ok(PresenceFrame {
            user_id: owner,
            online: parley_processors::presence::is_online(&p, now_ms()),
            last_seen: (p.last_seen > 0).then_some(p.last_seen),
        })
    }

    /// An account-topic change the accounts job derives into the store;
    /// answers once it is there.
    async fn log_account_change(&self, user: UserId, event: &Event) -> Result<(), ApiError> {
        let p = user_partition(user, self.partitions);
        let offset = self.append_at(topics::ACCOUNTS, p, event).await?;
        self.wait_applied(parley_processors::accounts::JOB, p, offset)
            .await
    }

    /// A page of scrollback for a member: newest first, below `before`.
    /// `limit` is 1..=200, 50 if not given.
    pub async fn history_page(
        &self,
        user: UserId,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: Option<u32>,
    ) -> Result<Vec<MsgFrame>, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE) as usize;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be 1..={MAX_PAGE}"
            )));
        }
        // A group member reads the span they were in: nothing before they
        // joined, nothing after they left.
        let (mut before, mut after) = (before, None);
        if let Access::Group(state) = self.access(user, &conversation, false).await? {
            let m = state.entry(user).expect("access found the member");
            after = m.joined;
            match m.left {
                Some(None) => return Ok(Vec::new()),
                Some(Some(last)) => {
                    let end = MessageId(last.0 + 1);
                    before = Some(before.map_or(end, |b| b.min(end)));
                }
                None => {}
            }
        }
        let page = self.history.page(conversation, before, limit).await?;
        Ok(page
            .iter()
            .filter(|m| Some(m.msg_id) > after)
            .map(|m| m.to_frame(None))
            .collect())
    }

    /// The caller's conversations, newest activity first, `limit` 1..=500
    /// (100 if not given).
    pub async fn conversations(
        &self,
        user: UserId,
        limit: Option<u32>,
    ) -> Result<Vec<ConversationEntry>, ApiError> {
        let limit = limit.unwrap_or(100) as usize;
        if !(1..=500).contains(&limit) {
            return Err(ApiError::bad_request("limit must be 1..=500"));
        }
        let list = self.history.conversations(user, limit).await?;
        Ok(list
            .into_iter()
            .map(|s| ConversationEntry {
                conversation_id: s.conversation,
                last_message: s.last.to_frame(None),
                unread: s.unread,
            })
            .collect())
    }

    /// Accounts and devices go to the user's `accounts` partition.
    async fn append_account(&self, user: UserId, event: &Event) -> Result<(), ApiError> {
        let p = user_partition(user, self.partitions);
        self.append(topics::ACCOUNTS, p, event).await
    }

    async fn append(&self, topic: &str, partition: u32, event: &Event) -> Result<(), ApiError> {
        self.append_at(topic, partition, event).await.map(|_| ())
    }

    /// Appends one event; returns its offset.
    async fn append_at(&self, topic: &str, partition: u32, event: &Event) -> Result<u64, ApiError> {
        let at = self
            .log
            .append(topic, partition, vec![Bytes::from(codec::encode(event))])
            .await?;
        APPENDS.inc();
        Ok(at.first_offset)
    }
}

pub fn validate_send(f: &SendFrame) -> Result<(), ApiError> {
    let n = f.client_msg_id.chars().count();
    if n == 0 || n > MAX_CLIENT_MSG_ID_CHARS {
        return Err(ApiError::bad_request(format!(
            "client_msg_id must be 1..{MAX_CLIENT_MSG_ID_CHARS} characters, got {n}"
        )));
    }
    match &f.body {
        Body::Text(t) if t.is_empty() => Err(ApiError::bad_request("text is empty")),
        Body::Text(t) if t.len() > MAX_TEXT_BYTES => Err(ApiError::too_large(format!(
            "text is {} bytes; the limit is {MAX_TEXT_BYTES}",
            t.len()
        ))),
        Body::Media(m) if m.media_id.is_empty() || m.media_id.len() > 128 => {
            Err(ApiError::bad_request("media_id must be 1..128 bytes"))
        }
        Body::Media(m) if m.caption.as_ref().is_some_and(|c| c.len() > 4096) => {
            Err(ApiError::too_large("caption over 4096 bytes"))
        }
        Body::Media(m) if m.mime.as_ref().is_some_and(|c| c.len() > 255) => {
            Err(ApiError::bad_request("mime over 255 bytes"))
        }
        _ => Ok(()),
    }
}

/// `(sender, client_msg_id)` → id, in two generations so memory stays bounded.
#[derive(Default)]
struct Recent {
    new: HashMap<(UserId, String), MessageId>,
    old: HashMap<(UserId, String), MessageId>,
}

impl Recent {
    fn get(&self, k: &(UserId, String)) -> Option<MessageId> {
        self.new.get(k).or_else(|| self.old.get(k)).copied()
    }
    fn insert(&mut self, k: (UserId, String), v: MessageId) {
        if self.new.len() >= RECENT {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(k, v);
    }
}

struct Appender {
    log: Arc<dyn Log>,
    state: Arc<dyn StateStore>,
    ids: Arc<MessageIdGenerator>,
    partition: u32,
    recent: Recent,
    tasks: TaskTracker,
}

fn ack_of(frame: &SendFrame, conversation: ConversationId, id: MessageId) -> Ack {
    Ack {
        client_msg_id: frame.client_msg_id.clone(),
        msg_id: id,
        conversation_id: conversation,
        ts: id.unix_ms(),
    }
}

impl Appender {
    /// Appends batches until `stop`, then answers what is queued.
    async fn run(
        &mut self,
        rx: &mut mpsc::Receiver<SendReq>,
        stop: &CancellationToken,
        edge_stop: &CancellationToken,
    ) {
        let mut reqs = Vec::with_capacity(MAX_BATCH);
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut reqs, MAX_BATCH) => n,
                _ = stop.cancelled() => return,
                _ = edge_stop.cancelled() => return,
            };
            if n == 0 {
                return;
            }
            self.batch(std::mem::take(&mut reqs)).await;
        }
    }

    /// No new sends; answers those already queued.
    async fn drain(&mut self, mut rx: mpsc::Receiver<SendReq>) {
        rx.close();
        let mut reqs = Vec::new();
        while rx.recv_many(&mut reqs, MAX_BATCH).await > 0 {
            self.batch(std::mem::take(&mut reqs)).await;
        }
    }

    /// Before the first send of a partition taken over: ids continue above
    /// the last one in the log, and the sends the router has not consumed
    /// yet (or the last [`TAIL_SCAN`]) answer resends with their first ids.
    async fn recover(&mut self) -> Result<(), EngineError> {
        let p = self.partition;
        let bounds = self.log.bounds(topics::EVENTS, p).await?;
        let routed = self
            .state
            .job_offset(parley_processors::router::JOB, p)
            .await?
            .unwrap_or(bounds.start);
        let mut at = routed
            .min(bounds.end.saturating_sub(TAIL_SCAN))
            .max(bounds.start);
        let limit = ReadLimit {
            max_records: 1024,
            max_bytes: 4 << 20,
        };
        let fresh_after = now_ms().saturating_sub(RESEND_WINDOW_MS);
        while at < bounds.end {
            let batch = self.log.read(topics::EVENTS, p, at, limit).await?;
            if batch.records.is_empty() {
                break;
            }
            for r in &batch.records {
                if let Ok(Event::MessageSent(m)) = codec::decode(&r.payload) {
                    self.ids.issue_after(m.msg_id);
                    if m.ts > fresh_after {
                        self.recent.insert((m.from, m.client_msg_id), m.msg_id);
                    }
                }
            }
            at = batch.next_offset;
        }
        Ok(())
    }

    async fn batch(&mut self, reqs: Vec<SendReq>) {
        let mut records = Vec::new();
        let mut idem = Vec::new();
        let mut in_batch: HashMap<(UserId, String), MessageId> = HashMap::new();
        let mut waiting = Vec::new();
        // Keys this task has not seen lately: one store call for all of them.
        let unknown: Vec<(UserId, String)> = reqs
            .iter()
            .map(|r| (r.caller.user, r.frame.client_msg_id.clone()))
            .filter(|k| self.recent.get(k).is_none())
            .collect();
        let stored: HashMap<(UserId, String), MessageId> = if unknown.is_empty() {
            HashMap::new()
        } else {
            match self.state.idem_get_many(unknown.clone()).await {
                Ok(found) => unknown
                    .into_iter()
                    .zip(found)
                    .filter_map(|(k, v)| Some((k, v?)))
                    .collect(),
                Err(e) => {
                    let err = ApiError::from(e);
                    for r in reqs {
                        let _ = r.reply.send(Err(err.clone()));
                    }
                    return;
                }
            }
        };
        for r in reqs {
            let key = (r.caller.user, r.frame.client_msg_id.clone());
            let known = self
                .recent
                .get(&key)
                .or_else(|| in_batch.get(&key).copied())
                .or_else(|| stored.get(&key).copied());
            if let Some(id) = known {
                // A resend: the same id, never a second message. If the
                // first copy is in this batch, answer once it is durable.
                if in_batch.contains_key(&key) {
                    waiting.push((r.reply, ack_of(&r.frame, r.conversation, id)));
                } else {
                    let _ = r.reply.send(Ok(ack_of(&r.frame, r.conversation, id)));
                }
                continue;
            }
            let id = self.ids.next_id();
            let ts = id.unix_ms();
            let event = Event::MessageSent(MessageSent {
                msg_id: id,
                conversation: r.conversation,
                from: r.caller.user,
                from_device: r.caller.device,
                to: r.frame.to,
                client_msg_id: r.frame.client_msg_id.clone(),
                body: r.frame.body.clone(),
                ts,
            });
            records.push(Bytes::from(codec::encode(&event)));
            idem.push(StateOp::IdemPut {
                user: r.caller.user,
                client_msg_id: r.frame.client_msg_id.clone(),
                msg_id: id,
                expires_at: ts + RESEND_WINDOW_MS,
            });
            in_batch.insert(key, id);
            waiting.push((r.reply, ack_of(&r.frame, r.conversation, id)));
        }
        if records.is_empty() {
            return;
        }
        let n = records.len() as u64;
        match self
            .log
            .append(topics::EVENTS, self.partition, records)
            .await
        {
            Ok(_) => {
                APPENDS.inc_by(n);
                for (k, id) in in_batch {
                    self.recent.insert(k, id);
                }
                for (reply, ack) in waiting {
                    let _ = reply.send(Ok(ack));
                }
                // After the acks: the router derives the same mappings from
                // the log, so a crash here loses nothing.
                let state = self.state.clone();
                self.tasks.spawn(async move {
                    if let Err(e) = state.write(idem).await {
                        tracing::warn!(error = %e, "storing idempotency keys failed; the router will derive them");
                    }
                });
            }
            Err(e) => {
                let err = ApiError::from(e);
                for (reply, _) in waiting {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Typing frames a user may send a second, and in a burst: clients send
/// one every few seconds while typing; more is noise to every member.
pub const TYPING_PER_SECOND: u32 = 2;
pub const TYPING_BURST: u32 = 5;
/// How long a group, contact or privacy change waits for its job to apply it.
const APPLIED_WAIT: Duration = Duration::from_secs(5);
/// The longest contact list.
pub const MAX_CONTACTS: usize = 5000;

type KeyedLimiter = governor::DefaultKeyedRateLimiter<UserId>;

fn typing_limiter() -> KeyedLimiter {
    let per_second = std::num::NonZeroU32::new(TYPING_PER_SECOND).expect("non-zero");
    let burst = std::num::NonZeroU32::new(TYPING_BURST).expect("non-zero");
    governor::RateLimiter::keyed(governor::Quota::per_second(per_second).allow_burst(burst))
}

/// What a member may see of a conversation.
pub enum Access {
    Direct,
    /// The group's state; the member's span is in it.
    Group(GroupState),
}

fn refusal(r: Refused) -> ApiError {
    ApiError::new(r.code, r.reason)
}

fn group_info(group: GroupId, state: &GroupState) -> GroupInfo {
    GroupInfo {
        group_id: group,
        conversation_id: ConversationId::group(group),
        name: state.name.clone(),
        members: state
            .current_members()
            .map(|m| GroupMember {
                user_id: m.user,
                admin: m.admin,
            })
            .collect(),
    }
}

/// Longest display name and "about" text, in characters (WhatsApp allows
/// 25 and 139; names here may be longer, as at sign-up).
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
pub const MAX_ABOUT_CHARS: usize = 140;

/// A profile change must change something, and every field must fit.
fn validate_profile(p: &ProfilePatch) -> Result<(), ApiError> {
    if p.display_name.is_none() && p.about.is_none() && p.avatar_media_id.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give display_name, about or avatar_media_id",
        ));
    }
    let no_controls = |s: &str| !s.chars().any(char::is_control);
    if let Some(name) = &p.display_name {
        let n = name.chars().count();
        if name.trim().is_empty() || n > MAX_DISPLAY_NAME_CHARS || !no_controls(name) {
            return Err(ApiError::bad_request(format!(
                "display_name must be 1..{MAX_DISPLAY_NAME_CHARS} characters, not blank, without control characters"
            )));
        }
    }
    if let Some(about) = &p.about {
        if about.chars().count() > MAX_ABOUT_CHARS || !no_controls(about) {
            return Err(ApiError::bad_request(format!(
                "about must be at most {MAX_ABOUT_CHARS} characters, without control characters"
            )));
        }
    }
    if let Some(media) = &p.avatar_media_id {
        let ok = media.len() <= 128
            && media
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(ApiError::bad_request(
                "avatar_media_id must be a media id (up to 128 of A-Z a-z 0-9 - _), or empty to remove the avatar",
            ));
        }
    }
    Ok(())
}
