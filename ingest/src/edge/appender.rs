//! The appender of one `events` partition: it takes every send waiting,
//! issues their `msg_id`s and appends them as one batch, with at most one
//! batch in flight. So ids rise in log order within a partition (the
//! protocol's "a later append has a larger msg_id" within a conversation),
//! and a resend of a `client_msg_id` always finds the first send's id:
//! either already appended (in the task's recent map or the state store)
//! or in the batch being built. An appender that takes a partition over
//! first reads the log's tail: the previous owner's recent ids keep
//! resends idempotent, and ids continue above the last one issued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parley_engines::telemetry::emit;
use parley_engines::{EngineError, FirstSend, Log, ReadLimit, StateOp, StateStore};
use parley_schemas::codec;
use parley_schemas::event::{Event, MessageSent};
use parley_schemas::ids::{now_ms, ConversationId, MessageId, MessageIdGenerator, UserId};
use parley_schemas::media::MediaId;
use parley_schemas::wire::{
    Ack, Body, ErrorCode, SendFrame, MAX_CLIENT_MSG_ID_CHARS, MAX_E2E_BYTES, MAX_TEXT_BYTES,
    RESEND_WINDOW_MS,
};
use parley_schemas::{jobs, topics};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::internal_events::{EdgeTrouble, RecordsAppended, SendDurable};

/// Records at the end of a partition an appender reads when it takes
/// over, besides what the router has not consumed yet.
const TAIL_SCAN: u64 = 256;
/// Sends gathered into one append at most.
const MAX_BATCH: usize = 1024;
/// Recent `client_msg_id`s an appender remembers before asking the store.
const RECENT: usize = 100_000;

/// A send waiting for its partition's appender.
pub(crate) struct SendReq {
    pub caller: Caller,
    pub conversation: ConversationId,
    pub frame: SendFrame,
    pub reply: oneshot::Sender<Result<Ack, ApiError>>,
    /// When the edge queued it, for the append stage's latency.
    pub queued: std::time::Instant,
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
        Body::E2e(e) if e.0.is_empty() => Err(ApiError::bad_request("e2e body is empty")),
        Body::E2e(e) if e.encoded_len() > MAX_E2E_BYTES => Err(ApiError::too_large(format!(
            "e2e body over {MAX_E2E_BYTES} bytes"
        ))),
        b => super::actions::validate(b),
    }
}

/// `(sender, client_msg_id)` → id, in two generations so memory stays bounded.
#[derive(Default)]
struct Recent {
    new: HashMap<(UserId, String), FirstSend>,
    old: HashMap<(UserId, String), FirstSend>,
}

impl Recent {
    fn get(&self, k: &(UserId, String)) -> Option<FirstSend> {
        self.new.get(k).or_else(|| self.old.get(k)).copied()
    }
    fn insert(&mut self, k: (UserId, String), v: FirstSend) {
        if self.new.len() >= RECENT {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(k, v);
    }
}

/// Sends acked whose idempotency entries are still being written, for
/// every appender of the edge: the same `client_msg_id` to a conversation
/// of another partition comes to another appender, which asks the store,
/// and must not miss one acked a moment ago (it would be appended anew).
pub(crate) type Unstored = Arc<Mutex<HashMap<(UserId, String), FirstSend>>>;

pub(crate) struct Appender {
    log: Arc<dyn Log>,
    state: Arc<dyn StateStore>,
    ids: Arc<MessageIdGenerator>,
    partition: u32,
    recent: Recent,
    tasks: TaskTracker,
    unstored: Unstored,
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
    pub fn new(
        log: Arc<dyn Log>,
        state: Arc<dyn StateStore>,
        ids: Arc<MessageIdGenerator>,
        partition: u32,
        tasks: TaskTracker,
        unstored: Unstored,
    ) -> Appender {
        Appender {
            log,
            state,
            ids,
            partition,
            recent: Recent::default(),
            tasks,
            unstored,
        }
    }

    /// Appends batches until `stop`, then answers what is queued.
    pub async fn run(
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
    pub async fn drain(&mut self, mut rx: mpsc::Receiver<SendReq>) {
        rx.close();
        let mut reqs = Vec::new();
        while rx.recv_many(&mut reqs, MAX_BATCH).await > 0 {
            self.batch(std::mem::take(&mut reqs)).await;
        }
    }

    /// Before the first send of a partition taken over: ids continue above
    /// the last one in the log, and the sends the router has not consumed
    /// yet (or the last [`TAIL_SCAN`]) answer resends with their first ids.
    pub async fn recover(&mut self) -> Result<(), EngineError> {
        let p = self.partition;
        let bounds = self.log.bounds(topics::EVENTS, p).await?;
        let routed = self
            .state
            .job_offset(jobs::ROUTER, p)
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
                let event = codec::decode(&r.payload).map_err(|e| {
                    // A newer build's record: its msg_id is unknown, so
                    // ids could not be issued above it. Not taken over.
                    EngineError::Undecodable {
                        topic: topics::EVENTS.to_owned(),
                        partition: p,
                        offset: r.offset,
                        reason: e.to_string(),
                    }
                })?;
                if let Event::MessageSent(m) = event {
                    self.ids.issue_after(m.msg_id);
                    if m.ts > fresh_after {
                        let first = FirstSend {
                            msg_id: m.msg_id,
                            conversation: Some(m.conversation),
                        };
                        self.recent.insert((m.from, m.client_msg_id), first);
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
        let mut media_uses = Vec::new();
        let mut in_batch: HashMap<(UserId, String), FirstSend> = HashMap::new();
        let mut waiting = Vec::new();
        // Keys this task has not seen lately, nor another appender of this
        // edge acked unstored: one store call for all of them.
        let unstored: HashMap<(UserId, String), FirstSend> = {
            let all = self.unstored.lock().expect("unstored lock");
            reqs.iter()
                .map(|r| (r.caller.user, r.frame.client_msg_id.clone()))
                .filter_map(|k| all.get(&k).map(|v| (k, *v)))
                .collect()
        };
        let unknown: Vec<(UserId, String)> = reqs
            .iter()
            .map(|r| (r.caller.user, r.frame.client_msg_id.clone()))
            .filter(|k| self.recent.get(k).is_none() && !unstored.contains_key(k))
            .collect();
        let stored: HashMap<(UserId, String), FirstSend> = if unknown.is_empty() {
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
                .or_else(|| unstored.get(&key).copied())
                .or_else(|| stored.get(&key).copied());
            if let Some(first) = known {
                // The same client_msg_id to another conversation is not a
                // resend: it would be acked with an id that never went there.
                if first.conversation.is_some_and(|c| c != r.conversation) {
                    let _ = r.reply.send(Err(ApiError::new(
                        ErrorCode::Conflict,
                        "client_msg_id was already used for another conversation",
                    )));
                    continue;
                }
                let id = first.msg_id;
                // A resend: the same id, never a second message. If the
                // first copy is in this batch, answer once it is durable.
                if in_batch.contains_key(&key) {
                    waiting.push((r.reply, ack_of(&r.frame, r.conversation, id), None));
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
                reply_to: r.frame.reply_to,
                forwarded: r.frame.forwarded,
            });
            records.push(Bytes::from(codec::encode(&event)));
            if let Body::Media(m) = &r.frame.body {
                if let Ok(media) = m.media_id.parse::<MediaId>() {
                    media_uses.push(StateOp::MediaUsed {
                        media,
                        conversation: r.conversation,
                        msg_id: id,
                    });
                }
            }
            idem.push(StateOp::IdemPut {
                user: r.caller.user,
                client_msg_id: r.frame.client_msg_id.clone(),
                msg_id: id,
                conversation: r.conversation,
                expires_at: ts + RESEND_WINDOW_MS,
            });
            in_batch.insert(
                key,
                FirstSend {
                    msg_id: id,
                    conversation: Some(r.conversation),
                },
            );
            let ack = ack_of(&r.frame, r.conversation, id);
            waiting.push((r.reply, ack, Some(r.queued)));
        }
        if records.is_empty() {
            return;
        }
        // Who may fetch a message's media is stored before the message is
        // acked or can reach anyone, so no recipient asks too early. (The
        // router derives it again from the log.)
        if !media_uses.is_empty() {
            if let Err(e) = self.state.write(media_uses).await {
                let err = ApiError::from(e);
                for (reply, _, _) in waiting {
                    let _ = reply.send(Err(err.clone()));
                }
                return;
            }
        }
        let n = records.len() as u64;
        match self
            .log
            .append(topics::EVENTS, self.partition, records)
            .await
        {
            Ok(_) => {
                emit(RecordsAppended { count: n });
                let keys: Vec<(UserId, String)> = in_batch.keys().cloned().collect();
                self.unstored
                    .lock()
                    .expect("unstored lock")
                    .extend(in_batch.iter().map(|(k, v)| (k.clone(), *v)));
                for (k, id) in in_batch {
                    self.recent.insert(k, id);
                }
                for (reply, ack, queued) in waiting {
                    let _ = reply.send(Ok(ack));
                    if let Some(queued) = queued {
                        emit(SendDurable { queued });
                    }
                }
                // After the acks: the router derives the same mappings from
                // the log, so a crash here loses nothing.
                let (state, unstored) = (self.state.clone(), self.unstored.clone());
                self.tasks.spawn(async move {
                    if let Err(e) = state.write(idem).await {
                        emit(EdgeTrouble::IdempotencyNotStored { error: &e });
                    }
                    let mut all = unstored.lock().expect("unstored lock");
                    for k in keys {
                        all.remove(&k);
                    }
                });
            }
            Err(e) => {
                let err = ApiError::from(e);
                for (reply, _, _) in waiting {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
