//! The connection loop: connect, sync from the last stored `seq`, send
//! the outbox, handle frames, heartbeat; after any loss, connect again
//! with exponential backoff and jitter (and a renewed token when the old
//! one is refused).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parley_schemas::wire::{
    ClientFrame, ErrorCode, HeartbeatFrame, ReceiptFrame, ReceiptStatus, ReceivedFrame,
    ServerFrame, SyncFrame,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::{frame, Client, Event};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The protocol asks for a heartbeat at least every 5 s.
const HEARTBEAT: Duration = Duration::from_secs(4);

pub(crate) async fn run(client: Client) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let stopped = client.inner.stop.notified();
        tokio::pin!(stopped);
        tokio::select! {
            _ = &mut stopped => return,
            connected = session(&client) => match connected {
                Ok(()) => backoff = BACKOFF_MIN,
                Err(refused) => {
                    if refused {
                        client.refresh().await;
                    }
                }
            }
        }
        client.emit(Event::Disconnected);
        let jitter = rand::random::<f64>() + 0.5;
        tokio::select! {
            _ = client.inner.stop.notified() => return,
            _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One socket, until it closes: `Ok` if it was open, `Err(true)` if the
/// upgrade was refused (a stale token), `Err(false)` if it never opened.
async fn session(client: &Client) -> Result<(), bool> {
    let Ok(Some(s)) = client.session() else {
        return Err(false);
    };
    let url = format!("{}/v1/ws", client.inner.url.replacen("http", "ws", 1));
    let mut req = url.into_client_request().map_err(|_| false)?;
    let auth = format!("Bearer {}", s.token).parse().map_err(|_| false)?;
    req.headers_mut().insert("authorization", auth);
    let (ws, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            return Err(r.status().as_u16() == 401)
        }
        Err(_) => return Err(false),
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    // From the last seq stored here: what the server replays from there
    // is dropped if stored already.
    // Sends made from now on go through the channel (after the outbox
    // below, perhaps twice: a resend is harmless, a send lost is not).
    *client.inner.socket.lock().expect("socket lock") = Some(tx);
    let since = client.store().seq().unwrap_or(0);
    let mut first = vec![frame(ClientFrame::Sync(SyncFrame {
        since: (since > 0).then_some(since),
    }))];
    for m in client.outbox().unwrap_or_default() {
        first.push(m.frame());
    }
    for f in first {
        if sink.send(Message::text(f)).await.is_err() {
            *client.inner.socket.lock().expect("socket lock") = None;
            return Ok(());
        }
    }
    client.emit(Event::Connected);
    let mut beat = tokio::time::interval(HEARTBEAT);
    let result = loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(text) => if sink.send(Message::text(text)).await.is_err() { break Ok(()) },
                None => break Ok(()),
            },
            _ = beat.tick() => {
                let hb = frame(ClientFrame::Heartbeat(HeartbeatFrame { active: true }));
                if sink.send(Message::text(hb)).await.is_err() { break Ok(()) }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    for reply in handle(client, &t) {
                        if sink.send(Message::text(reply)).await.is_err() { break }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break Ok(()),
                Some(Ok(_)) => {}
            },
        }
    };
    *client.inner.socket.lock().expect("socket lock") = None;
    result
}

/// Handles one server frame; what to answer on the socket.
fn handle(client: &Client, text: &str) -> Vec<String> {
    let Ok(f) = serde_json::from_str::<ServerFrame>(text) else {
        tracing::warn!(frame = text, "unreadable frame");
        return Vec::new();
    };
    match f {
        ServerFrame::Msg(mut m) => {
            // Stored, then confirmed: never the other way round. An
            // encrypted one is decrypted first, unless it is a replay (its
            // keys are used up).
            let added = {
                let mut store = client.store();
                if let (parley_schemas::wire::Body::E2e(_), Ok(false), Ok(Some(s))) =
                    (&m.body, store.has_message(m.msg_id), store.session())
                {
                    if let Some(body) = crate::e2e::decrypt(&store, (s.user_id, s.device_id), &m) {
                        m.body = body;
                    }
                }
                store.put_message(&m)
            };
            match added {
                Ok(added) => {
                    let mut replies = Vec::new();
                    if let Some(seq) = m.seq {
                        replies.push(frame(ClientFrame::Received(ReceivedFrame { seq })));
                    }
                    // Stored on a device of the recipient: delivered (the
                    // sender's second tick), cumulative per conversation.
                    let me = client.session().ok().flatten().map(|s| s.user_id);
                    if added && Some(m.from) != me {
                        replies.push(frame(ClientFrame::Receipt(ReceiptFrame {
                            conversation_id: m.conversation_id,
                            msg_id: m.msg_id,
                            status: ReceiptStatus::Delivered,
                        })));
                    }
                    if added {
                        client.emit(Event::Message(m));
                    }
                    replies
                }
                Err(e) => {
                    tracing::error!(error = %e, "a message could not be stored; not confirmed");
                    Vec::new()
                }
            }
        }
        ServerFrame::Ack(a) => {
            // Our own message joins the conversation as the server has it
            // (a replay from the inbox later is then a duplicate).
            if let Err(e) = client.store().acked(&a) {
                tracing::error!(error = %e, "an acked message stays in the outbox");
            }
            client.emit(Event::Acked(a));
            Vec::new()
        }
        ServerFrame::Error(e) => {
            let retry = matches!(e.code, ErrorCode::RateLimited | ErrorCode::Unavailable);
            if let (Some(id), false) = (e.reference.clone(), retry) {
                let _ = client.store().pop_outbox(&id);
                client.emit(Event::Refused {
                    client_msg_id: id,
                    error: parley_schemas::wire::ErrorBody {
                        code: e.code,
                        message: e.message,
                    },
                });
            }
            Vec::new()
        }
        ServerFrame::Status(s) => {
            client.emit(Event::Status(s));
            Vec::new()
        }
        ServerFrame::Presence(p) => {
            client.emit(Event::Presence(p));
            Vec::new()
        }
        ServerFrame::ConversationSettings(c) => {
            client.emit(Event::ConversationSettings(c));
            Vec::new()
        }
        ServerFrame::Typing(t) => {
            client.emit(Event::Typing(t));
            Vec::new()
        }
        ServerFrame::PrekeysLow(p) => {
            let mine = client.session().ok().flatten().map(|s| s.device_id);
            if mine == Some(p.device_id) {
                let c = client.clone();
                tokio::spawn(async move {
                    if let Err(e) = c.enable_e2e().await {
                        tracing::warn!(error = %e, "topping up one-time prekeys");
                    }
                });
            }
            client.emit(Event::PrekeysLow(p));
            Vec::new()
        }
        ServerFrame::Expired(e) => {
            // Nothing more will come for those seqs: skip and confirm
            // them, so the next sync does not say it again.
            if let Err(err) = client.store().skip_to(e.up_to_seq) {
                tracing::error!(error = %err, "the expired seqs could not be recorded");
                return Vec::new();
            }
            client.emit(Event::Expired(e.up_to_seq));
            vec![frame(ClientFrame::Received(ReceivedFrame {
                seq: e.up_to_seq,
            }))]
        }
        ServerFrame::History(_) => Vec::new(),
    }
}
