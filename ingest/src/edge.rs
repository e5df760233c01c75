//! What the edge does with a client's frames, shared by HTTP and WebSocket.
//!
//! Sends go through one [`Appender`] task per `events` partition. It takes
//! every send waiting, issues their `msg_id`s and appends them as one batch,
//! with at most one batch in flight. So ids rise in log order within a
//! partition (the protocol's "a later append has a larger msg_id" within a
//! conversation), and a resend of a `client_msg_id` always finds the first
//! send's id: either already appended (in the task's recent map or the
//! state store) or in the batch being built.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use parley_delivery::hub::{Hub, Push};
use parley_engines::{Log, StateOp, StateStore};
use parley_schemas::codec;
use parley_schemas::event::{Event, Heartbeat, MessageSent, Receipt};
use parley_schemas::ids::{now_ms, ConversationId, MessageId, MessageIdGenerator, UserId};
use parley_schemas::partition::{conversation_partition, user_partition};
use parley_schemas::topics;
use parley_schemas::wire::{
    Ack, Body, ReceiptFrame, Recipient, SendFrame, ServerFrame, TypingNotice,
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

/// Sends gathered into one append at most.
const MAX_BATCH: usize = 1024;
/// Recent `client_msg_id`s an appender remembers before asking the store.
const RECENT: usize = 100_000;

/// Shared state of the edge.
pub struct Edge {
    pub log: Arc<dyn Log>,
    pub state: Arc<dyn StateStore>,
    pub hub: Arc<Hub>,
    pub auth: AuthConfig,
    partitions: u32,
    appenders: Vec<mpsc::Sender<SendReq>>,
    /// Users known to exist (accounts are never deleted), so a send checks
    /// its recipient without a store call.
    known_users: std::sync::RwLock<std::collections::HashSet<UserId>>,
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
    /// `partitions` is the partition count of every topic.
    pub fn new(
        log: Arc<dyn Log>,
        state: Arc<dyn StateStore>,
        hub: Arc<Hub>,
        auth: AuthConfig,
        ids: Arc<MessageIdGenerator>,
        partitions: u32,
    ) -> Arc<Edge> {
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let appenders = (0..partitions)
            .map(|p| {
                let (tx, rx) = mpsc::channel(4096);
                let task = Appender {
                    log: log.clone(),
                    state: state.clone(),
                    ids: ids.clone(),
                    partition: p,
                    recent: Recent::default(),
                    tasks: tasks.clone(),
                };
                tasks.spawn(task.run(rx, stop.clone()));
                tx
            })
            .collect();
        Arc::new(Edge {
            log,
            state,
            hub,
            auth,
            partitions,
            appenders,
            known_users: Default::default(),
            tasks,
            stop,
        })
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
        validate_send(&frame)?;
        let conversation = match frame.to {
            Recipient::User(to) => {
                if !self.user_exists(to).await? {
                    return Err(ApiError::not_found(format!("no user {to}")));
                }
                ConversationId::direct(caller.user, to)
            }
            Recipient::Group(g) => return Err(ApiError::not_found(format!("no group {g}"))),
        };
        let p = conversation_partition(&conversation, self.partitions);
        let (reply, rx) = oneshot::channel();
        let unavailable = || {
            ApiError::new(
                parley_schemas::wire::ErrorCode::Unavailable,
                "the edge is shutting down",
            )
        };
        self.appenders[p as usize]
            .send(SendReq {
                caller,
                conversation,
                frame,
                reply,
            })
            .await
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    pub async fn user_exists(&self, user: UserId) -> Result<bool, ApiError> {
        if self
            .known_users
            .read()
            .expect("known users")
            .contains(&user)
        {
            return Ok(true);
        }
        let exists = self.state.account(user).await?.is_some();
        if exists {
            let mut known = self.known_users.write().expect("known users");
            // Bounded: past this, recipients are checked in the store again.
            if known.len() < 1_000_000 {
                known.insert(user);
            }
        }
        Ok(exists)
    }

    /// A cumulative delivered/read receipt from a member of the conversation.
    pub async fn receipt(&self, caller: Caller, r: ReceiptFrame) -> Result<(), ApiError> {
        self.check_member(caller.user, &r.conversation_id)?;
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

    /// Ephemeral: straight to the other member's connected devices, never
    /// to the log.
    pub fn typing(&self, caller: Caller, conversation: ConversationId) -> Result<(), ApiError> {
        self.check_member(caller.user, &conversation)?;
        if let Some(peer) = conversation.peer_of(caller.user) {
            let frame = ServerFrame::Typing(TypingNotice {
                conversation_id: conversation,
                user_id: caller.user,
            });
            self.hub.push(peer, &Push::Frame(Arc::new(frame)), None);
        }
        Ok(())
    }

    /// Whether `user` may act in `conversation`. Groups arrive with issue 6;
    /// until then no group exists.
    pub fn check_member(
        &self,
        user: UserId,
        conversation: &ConversationId,
    ) -> Result<(), ApiError> {
        match conversation {
            ConversationId::Direct { .. } if conversation.is_direct_member(user) => Ok(()),
            ConversationId::Direct { .. } => {
                Err(ApiError::forbidden("not a member of this conversation"))
            }
            ConversationId::Group(g) => Err(ApiError::not_found(format!("no group {g}"))),
        }
    }

    async fn append(&self, topic: &str, partition: u32, event: &Event) -> Result<(), ApiError> {
        self.log
            .append(topic, partition, vec![Bytes::from(codec::encode(event))])
            .await?;
        APPENDS.inc();
        Ok(())
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
    async fn run(mut self, mut rx: mpsc::Receiver<SendReq>, stop: CancellationToken) {
        let mut reqs = Vec::with_capacity(MAX_BATCH);
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut reqs, MAX_BATCH) => n,
                _ = stop.cancelled() => {
                    // No new sends; answer those already queued.
                    rx.close();
                    rx.recv_many(&mut reqs, usize::MAX).await
                }
            };
            if n == 0 {
                return;
            }
            self.batch(std::mem::take(&mut reqs)).await;
        }
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
