//! Sends and receipts.
//!
//! Sends go through one [`Appender`] task per `events` partition (see
//! [`super::appender`]), so ids rise in log order within a partition and a
//! resend of a `client_msg_id` always finds the first send's id.
//!
//! With several edges, each `events` partition has one appender in the
//! whole cluster: the edge holding the partition's lease
//! ([`APPEND_SCOPE`]). Another edge forwards the send to it over HTTP
//! (`POST /v1/messages` with the caller's identity and [`FORWARDED`]), so
//! the order holds cluster-wide.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use parley_engines::cluster::lease_name;
use parley_engines::{Cluster, EngineError};
use parley_schemas::event::{Event, Receipt};
use parley_schemas::ids::{now_ms, ConversationId, MessageIdGenerator};
use parley_schemas::partition::conversation_partition;
use parley_schemas::topics;
use parley_schemas::wire::{Ack, Body, ErrorBody, ErrorCode, ReceiptFrame, Recipient, SendFrame};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actions::Actions;
use super::appender::{validate_send, Appender, SendReq};
use super::backlog::Backlog;
use super::core::{Access, Core};
use crate::auth::{AuthConfig, Caller};
use crate::error::ApiError;
use crate::internal_events::EdgeTrouble;
use parley_engines::telemetry::emit;

/// The group of edge nodes in the cluster.
pub const GROUP: &str = "ingest";
/// Leases on `events` partitions: the holder runs the partition's appender.
pub const APPEND_SCOPE: &str = "append/events";
/// Header of a send forwarded by another edge: never forwarded again.
pub const FORWARDED: &str = "x-parley-forwarded";

pub struct Messages {
    core: Arc<Core>,
    /// Judges edits, deletions, reactions, replies and forwards.
    actions: Actions,
    ids: Arc<MessageIdGenerator>,
    cluster: Arc<dyn Cluster>,
    /// Mints the caller's token for a forwarded send.
    auth: Arc<AuthConfig>,
    /// Whether delivery is too far behind to take more sends.
    backlog: Arc<Backlog>,
    /// The appenders of the `events` partitions this edge holds.
    appenders: RwLock<HashMap<u32, mpsc::Sender<SendReq>>>,
    /// Other edges' addresses, by node.
    peers: RwLock<HashMap<u32, String>>,
    http: reqwest::Client,
    /// Where an appender spawns the writes that follow an ack.
    tasks: TaskTracker,
    /// The edge's shutdown: appenders drain.
    edge_stop: CancellationToken,
    /// Sends acked by this edge's appenders whose idempotency entries are
    /// not stored yet, seen by every partition's appender.
    unstored: super::appender::Unstored,
}

impl Messages {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        core: Arc<Core>,
        actions: Actions,
        ids: Arc<MessageIdGenerator>,
        cluster: Arc<dyn Cluster>,
        auth: Arc<AuthConfig>,
        backlog: Arc<Backlog>,
        tasks: TaskTracker,
        edge_stop: CancellationToken,
    ) -> Messages {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .expect("an HTTP client without TLS builds");
        Messages {
            core,
            actions,
            ids,
            cluster,
            auth,
            backlog,
            appenders: Default::default(),
            unstored: Default::default(),
            peers: Default::default(),
            http,
            tasks,
            edge_stop,
        }
    }

    fn node(&self) -> u32 {
        self.ids.node() as u32
    }

    /// Runs the appender of `events` partition `p` until `stop` (or the
    /// edge's shutdown), then answers what it holds. Fails only if the log
    /// cannot be read at takeover.
    pub async fn run_appender(&self, p: u32, stop: CancellationToken) -> Result<(), EngineError> {
        let mut task = Appender::new(
            self.core.log.clone(),
            self.core.state.clone(),
            self.ids.clone(),
            p,
            self.tasks.clone(),
            self.unstored.clone(),
        );
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
        task.run(&mut rx, &stop, &self.edge_stop).await;
        // New sends go elsewhere from now on; those queued are answered.
        self.appenders.write().expect("appenders").remove(&p);
        task.drain(rx).await;
        Ok(())
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
        mut frame: SendFrame,
        may_forward: bool,
    ) -> Result<Ack, ApiError> {
        validate_send(&frame)?;
        if let Body::Media(m) = &mut frame.body {
            // Only media the sender may fetch can be sent on; its type,
            // size and thumbnail are what the server found, whatever the
            // client says.
            let record = match m.media_id.parse() {
                Ok(id) => super::media::usable(&self.core, caller.user, id).await?,
                Err(_) => None,
            };
            let record = record
                .ok_or_else(|| ApiError::forbidden("no media with this id that you may send"))?;
            m.mime = Some(record.mime);
            m.size = Some(record.size);
            let image = record.image.filter(|i| i.width > 0);
            m.width = image.map(|i| i.width);
            m.height = image.map(|i| i.height);
            m.thumbnail = image.map(|i| i.thumbnail);
        }
        // The edge the client reached decides; a forwarded send passed.
        if may_forward {
            self.backlog.admit()?;
        }
        let (conversation, group) = match frame.to {
            Recipient::User(to) => {
                self.core.require_user(to).await?;
                if self.core.state.blocks(to, caller.user).await? {
                    return Err(ApiError::forbidden(
                        "this user does not take messages from you",
                    ));
                }
                (ConversationId::direct(caller.user, to), None)
            }
            Recipient::Group(g) => {
                let c = ConversationId::group(g);
                match self.core.access(caller.user, &c, true).await? {
                    Access::Group(state) => (c, Some(state)),
                    Access::Direct => (c, None),
                }
            }
        };
        self.actions
            .check(&caller, conversation, group.as_ref(), &frame, may_forward)
            .await?;
        let p = conversation_partition(&conversation, self.core.partitions);
        let local = self.appenders.read().expect("appenders").get(&p).cloned();
        let frame = match local {
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                let req = SendReq {
                    caller,
                    conversation,
                    frame,
                    reply,
                    queued: std::time::Instant::now(),
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
            return Err(moving(p));
        }
        self.forward(p, caller, frame).await
    }

    /// Hands a send to the edge that holds its partition, and returns that
    /// edge's answer as if it were ours.
    async fn forward(&self, p: u32, caller: Caller, frame: SendFrame) -> Result<Ack, ApiError> {
        let node = self
            .cluster
            .holder(&lease_name(APPEND_SCOPE, p))
            .await?
            .filter(|n| *n != self.node())
            .ok_or_else(|| moving(p))?;
        let addr = self.peer(node).await?.ok_or_else(|| moving(p))?;
        let sent = self
            .http
            .post(format!("http://{addr}/v1/messages"))
            .bearer_auth(self.auth.edge(caller))
            .header(FORWARDED, "1")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&frame).expect("send frames serialize"))
            .send()
            .await;
        // Peers' addresses and transport errors go to the log only.
        let failed = |error: &dyn std::fmt::Display, code| {
            emit(EdgeTrouble::ForwardFailed { node, error });
            ApiError::new(
                code,
                "the edge holding this conversation did not answer; retry",
            )
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                // Its address may be stale; ask again next time.
                self.peers.write().expect("peers").remove(&node);
                return Err(failed(&e, ErrorCode::Unavailable));
            }
        };
        let ok = resp.status().is_success();
        let body = resp
            .bytes()
            .await
            .map_err(|e| failed(&e, ErrorCode::Unavailable))?;
        if ok {
            serde_json::from_slice(&body).map_err(|e| failed(&e, ErrorCode::Internal))
        } else {
            let e: ErrorBody =
                serde_json::from_slice(&body).map_err(|e| failed(&e, ErrorCode::Internal))?;
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

    /// A cumulative delivered/read receipt from a member of the conversation.
    pub async fn receipt(&self, caller: Caller, r: ReceiptFrame) -> Result<(), ApiError> {
        let access = self
            .core
            .access(caller.user, &r.conversation_id, true)
            .await?;
        if let (Access::Direct, Some(peer)) = (access, r.conversation_id.peer_of(caller.user)) {
            self.core.require_user(peer).await?;
        }
        // A receipt covers at most what reached the reader's inbox: one
        // naming a later (or made-up) id would tick messages never delivered.
        let head = self
            .core
            .state
            .inbox_head(caller.user, r.conversation_id)
            .await?;
        let Some(up_to) = head.map(|h| h.min(r.msg_id)) else {
            return Ok(());
        };
        let event = Event::Receipt(Receipt {
            conversation: r.conversation_id,
            by: caller.user,
            device: caller.device,
            up_to,
            status: r.status,
            ts: now_ms(),
        });
        let p = conversation_partition(&r.conversation_id, self.core.partitions);
        self.core.append(topics::EVENTS, p, &event).await
    }
}

fn moving(p: u32) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("partition {p} is moving between edges; retry"),
    )
}
