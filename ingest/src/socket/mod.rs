//! The socket side of the edge: the process that holds a device's
//! WebSocket also delivers to it (ARCHITECTURE.md, "Where sockets live").
//!
//! Layout:
//! - this file: one connection: its registrations, and the reader that
//!   handles the client's frames. Generic over `Sink`/`Stream`, so tests
//!   can drive it without a network.
//! - [`hub`]: users → their connected devices' queues; the in-process
//!   [`Pusher`](parley_engines::push::Pusher), and the mailbox that takes
//!   pushes mailed by delivery nodes in a cluster.
//! - [`feed`]: one device's position in its inbox: live items in order,
//!   gaps filled and backlogs replayed from the store.
//! - `writer`: the socket's writer, which owns its sink and the device's
//!   [`feed::Feed`]: answers, replays and pushes, written in bursts.

pub mod feed;
#[cfg(test)]
mod feed_tests;
pub mod hub;
mod writer;

use std::sync::Arc;

use axum::extract::ws::Message;
use futures::{Sink, SinkExt, Stream, StreamExt};
use parley_engines::telemetry::emit;
use parley_schemas::wire::{parse_client_frame, ClientFrame, HistoryPage, ServerFrame};

use crate::auth::Caller;
use crate::edge::{Edge, SESSION_TTL};
use crate::error::ApiError;
use crate::internal_events::{EdgeTrouble, Limit, LimitHit, Socket};
use writer::{send, write_loop, Out, Outbox};

/// Serves one device's socket. `backlog_to`: the user's newest inbox seq
/// read before the client saw its connection accepted; what is past it is
/// live to the client, and goes out without a `sync` (see [`feed::Feed`]).
/// `None`: what exists when the feed opens.
pub async fn serve<W, R, E>(
    edge: Arc<Edge>,
    caller: Caller,
    backlog_to: Option<u64>,
    sink: W,
    stream: R,
) where
    W: Sink<Message> + Unpin + Send + 'static,
    R: Stream<Item = Result<Message, E>> + Unpin + Send + 'static,
{
    // Shutdown waits for this socket; the token is released only after
    // everything the socket held (the edge, its engines) is dropped.
    let tracked = edge.sockets().track();
    serve_tracked(edge, caller, backlog_to, sink, stream).await;
    drop(tracked);
}

async fn serve_tracked<W, R, E>(
    edge: Arc<Edge>,
    caller: Caller,
    backlog_to: Option<u64>,
    sink: W,
    stream: R,
) where
    W: Sink<Message> + Unpin + Send + 'static,
    R: Stream<Item = Result<Message, E>> + Unpin + Send + 'static,
{
    emit(Socket { open: true });
    let sockets = edge.sockets();
    // Register before the feed reads the inbox head, so no item falls
    // between the two: an earlier one is below the head, a later one is pushed.
    let (registration, pushes) = sockets.register(caller.user, caller.device);
    let limits = edge.limits().clone();
    let (out, out_rx) = Outbox::new(&limits);
    // Registered before the feed reads the head too: a delivery node that
    // stores an item after that read finds this edge in the registry.
    let opened = match sockets.session_open(caller.user).await {
        Ok(()) => sockets.feed(caller.user, caller.device, backlog_to).await,
        Err(e) => Err(e),
    };
    match opened {
        Ok(feed) => {
            let writer = tokio::spawn(write_loop(sink, limits, out_rx, pushes, feed));
            if let Err(e) = edge.presence().heartbeat(caller, false, false).await {
                out.frame(&e.into_frame(None)).await;
            }
            // A device that ran low while away hears it now.
            match edge.keys().low_on_connect(caller).await {
                Ok(Some(low)) => {
                    out.frame(&ServerFrame::PrekeysLow(low)).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading the device's prekey count"),
            }
            let mut writer = writer;
            // A writer that stops (the socket failed, or the client stopped
            // reading) ends the connection: the reader stops with it.
            let writer_done = tokio::select! {
                _ = read_loop(&edge, caller, stream, &out) => false,
                _ = &mut writer => true,
            };
            // Closing both queues ends the writer once it has sent what is queued.
            drop(registration);
            drop(out);
            if !writer_done {
                let _ = writer.await;
            }
            let _ = edge.presence().heartbeat(caller, false, true).await;
        }
        Err(e) => {
            drop(registration);
            let mut sink = sink;
            if send(&mut sink, &e.into_frame(None)).await {
                let _ = sink.flush().await;
            }
        }
    }
    sockets.session_closed(caller.user).await;
    emit(Socket { open: false });
}

async fn read_loop<R, E>(edge: &Edge, caller: Caller, mut stream: R, out: &Outbox)
where
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    // The registry entry lives while the socket does, refreshed a few
    // times per TTL whatever the client sends.
    let mut refresh = tokio::time::interval(SESSION_TTL / 3);
    refresh.reset();
    let idle = edge.limits().idle_timeout();
    loop {
        let msg = tokio::select! {
            m = tokio::time::timeout(idle, stream.next()) => match m {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => {
                    // Not even a pong: the peer is gone without a close.
                    emit(LimitHit { limit: Limit::IdleSocket });
                    break;
                }
            },
            _ = refresh.tick() => {
                if let Err(e) = edge.sockets().session_open(caller.user).await {
                    emit(EdgeTrouble::SessionNotRefreshed { error: &e.message });
                }
                // In case the "signed out" push was lost on the way.
                if let Ok(false) = edge.sessions().still_signed_in(caller).await {
                    break;
                }
                continue;
            }
            _ = edge.sockets().stopping() => break,
        };
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Binary(_)) => {
                let e = ApiError::bad_request(
                    "binary frames are not part of the protocol; send JSON text",
                );
                out.frame(&e.into_frame(None)).await;
                continue;
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue, // ping/pong: answered by the library
        };
        let (reference, result) = handle(edge, caller, text.as_str(), out).await;
        if let Err(e) = result {
            if !out.frame(&e.into_frame(reference)).await {
                break;
            }
        }
    }
}

/// Handles one text frame; returns the `client_msg_id` it carried, for the
/// `ref` of an error.
async fn handle(
    edge: &Edge,
    caller: Caller,
    text: &str,
    out: &Outbox,
) -> (Option<String>, Result<(), ApiError>) {
    let frame = match parse_client_frame(text) {
        Ok(f) => f,
        Err(r) => {
            let e = if r.too_large {
                ApiError::too_large(r.reason)
            } else {
                ApiError::bad_request(r.reason)
            };
            return (r.reference, Err(e));
        }
    };
    let reference = match &frame {
        ClientFrame::Send(f) => Some(f.client_msg_id.clone()),
        _ => None,
    };
    let result = async {
        let guard = edge.guard();
        let user = &caller.user;
        match &frame {
            ClientFrame::Send(_) => guard.sends.check(user)?,
            ClientFrame::Receipt(_) => guard.receipts.check(user)?,
            ClientFrame::Heartbeat(_) => guard.heartbeats.check(user)?,
            ClientFrame::Sync(_) | ClientFrame::History(_) => guard.history.check(user)?,
            // Typing has its own, tighter limit; confirmations cost nothing.
            ClientFrame::Typing(_) | ClientFrame::Received(_) => {}
        }
        match frame {
            ClientFrame::Send(f) => {
                let ack = edge.messages().send(caller, f).await?;
                out.frame(&ServerFrame::Ack(ack)).await;
            }
            ClientFrame::Receipt(r) => edge.messages().receipt(caller, r).await?,
            ClientFrame::Sync(s) => {
                out.control(Out::Sync(s.since)).await;
            }
            ClientFrame::Received(r) => {
                out.control(Out::Received(r.seq)).await;
            }
            ClientFrame::Heartbeat(h) => edge.presence().heartbeat(caller, h.active, false).await?,
            ClientFrame::Typing(t) => edge.presence().typing(caller, t.conversation_id).await?,
            ClientFrame::History(h) => {
                let p = edge
                    .history()
                    .page(caller.user, h.conversation_id, h.before, h.limit)
                    .await?;
                let page = HistoryPage {
                    conversation_id: h.conversation_id,
                    messages: p.messages,
                    more: p.more,
                };
                out.frame(&ServerFrame::History(page)).await;
            }
        }
        Ok(())
    }
    .await;
    (reference, result)
}
