//! One WebSocket connection: a reader that handles the client's frames,
//! and a writer that owns the socket's sink and this device's [`Feed`].
//! Generic over `Sink`/`Stream`, so tests can drive it without a network.

use std::sync::Arc;

use axum::extract::ws::Message;
use futures::{Sink, SinkExt, Stream, StreamExt};
use parley_delivery::feed::{Feed, Msgs};
use parley_delivery::hub::Push;
use parley_delivery::metrics;
use parley_schemas::wire::{ClientFrame, HistoryPage, ServerFrame, MAX_FRAME_BYTES};
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::edge::{Edge, SESSION_TTL};
use crate::error::ApiError;

/// What the reader asks the writer to do.
enum Out {
    Frame(ServerFrame),
    Sync(Option<u64>),
}

pub async fn serve<W, R, E>(edge: Arc<Edge>, caller: Caller, sink: W, stream: R)
where
    W: Sink<Message> + Unpin + Send + 'static,
    R: Stream<Item = Result<Message, E>> + Unpin + Send + 'static,
{
    // Shutdown waits for this socket; the token is released only after
    // everything the socket held (the edge, its engines) is dropped.
    let tracked = edge.tasks.token();
    serve_tracked(edge, caller, sink, stream).await;
    drop(tracked);
}

async fn serve_tracked<W, R, E>(edge: Arc<Edge>, caller: Caller, sink: W, stream: R)
where
    W: Sink<Message> + Unpin + Send + 'static,
    R: Stream<Item = Result<Message, E>> + Unpin + Send + 'static,
{
    metrics::SOCKETS.inc();
    // Register before the feed reads the inbox head, so no item falls
    // between the two: an earlier one is below the head, a later one is pushed.
    let (registration, pushes) = edge.hub.register(caller.user, caller.device);
    let (out, out_rx) = mpsc::channel(256);
    // Registered before the feed reads the head too: a delivery node that
    // stores an item after that read finds this edge in the registry.
    let opened = match edge.session_open(caller.user).await {
        Ok(()) => Feed::open(edge.state.clone(), caller.user, caller.device)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match opened {
        Ok(feed) => {
            let writer = tokio::spawn(write_loop(sink, out_rx, pushes, feed));
            if let Err(e) = edge.heartbeat(caller, false, false).await {
                let _ = out.send(Out::Frame(e.into_frame(None))).await;
            }
            read_loop(&edge, caller, stream, &out).await;
            // Closing both queues ends the writer once it has sent what is queued.
            drop(registration);
            drop(out);
            let _ = writer.await;
            let _ = edge.heartbeat(caller, false, true).await;
        }
        Err(e) => {
            drop(registration);
            let mut sink = sink;
            if send(&mut sink, &e.into_frame(None)).await {
                let _ = sink.flush().await;
            }
        }
    }
    edge.session_closed(caller.user).await;
    metrics::SOCKETS.dec();
}

async fn read_loop<R, E>(edge: &Edge, caller: Caller, mut stream: R, out: &mpsc::Sender<Out>)
where
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    // The registry entry lives while the socket does, refreshed a few
    // times per TTL whatever the client sends.
    let mut refresh = tokio::time::interval(SESSION_TTL / 3);
    refresh.reset();
    loop {
        let msg = tokio::select! {
            m = stream.next() => match m {
                Some(m) => m,
                None => break,
            },
            _ = refresh.tick() => {
                if let Err(e) = edge.session_open(caller.user).await {
                    tracing::warn!(error = %e.message, "refreshing a session failed");
                }
                continue;
            }
            _ = edge.stop.cancelled() => break,
        };
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Binary(_)) => {
                let e = ApiError::bad_request(
                    "binary frames are not part of the protocol; send JSON text",
                );
                let _ = out.send(Out::Frame(e.into_frame(None))).await;
                continue;
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue, // ping/pong: answered by the library
        };
        let (reference, result) = handle(edge, caller, text.as_str(), out).await;
        if let Err(e) = result {
            if out.send(Out::Frame(e.into_frame(reference))).await.is_err() {
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
    out: &mpsc::Sender<Out>,
) -> (Option<String>, Result<(), ApiError>) {
    if text.len() > MAX_FRAME_BYTES {
        let e = ApiError::too_large(format!(
            "frame of {} bytes; the limit is {MAX_FRAME_BYTES}",
            text.len()
        ));
        return (None, Err(e));
    }
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                None,
                Err(ApiError::bad_request(format!("malformed JSON: {e}"))),
            )
        }
    };
    let reference = value
        .get("client_msg_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let frame: ClientFrame = match serde_json::from_value(value) {
        Ok(f) => f,
        Err(e) => {
            return (
                reference,
                Err(ApiError::bad_request(format!("invalid frame: {e}"))),
            )
        }
    };
    let result = async {
        match frame {
            ClientFrame::Send(f) => {
                let ack = edge.send(caller, f).await?;
                let _ = out.send(Out::Frame(ServerFrame::Ack(ack))).await;
            }
            ClientFrame::Receipt(r) => edge.receipt(caller, r).await?,
            ClientFrame::Sync(s) => {
                let _ = out.send(Out::Sync(s.since)).await;
            }
            ClientFrame::Heartbeat(h) => edge.heartbeat(caller, h.active, false).await?,
            ClientFrame::Typing(t) => edge.typing(caller, t.conversation_id).await?,
            ClientFrame::History(h) => {
                let messages = edge
                    .history_page(caller.user, h.conversation_id, h.before, h.limit)
                    .await?;
                let page = HistoryPage {
                    conversation_id: h.conversation_id,
                    messages,
                };
                let _ = out.send(Out::Frame(ServerFrame::History(page))).await;
            }
        }
        Ok(())
    }
    .await;
    (reference, result)
}

/// Frames are queued in the socket's buffer and written out when nothing
/// more is waiting, or after this many: a burst costs one write, not one
/// per frame, and a steady stream still goes out promptly.
const FLUSH_EVERY: usize = 64;

async fn write_loop<W: Sink<Message> + Unpin>(
    mut sink: W,
    mut out: mpsc::Receiver<Out>,
    mut pushes: mpsc::Receiver<Push>,
    mut feed: Feed,
) {
    let mut unflushed = 0;
    loop {
        let ok = tokio::select! {
            biased;
            o = out.recv() => match o {
                Some(Out::Frame(f)) => send(&mut sink, &f).await,
                Some(Out::Sync(since)) => replay(&mut sink, &mut feed, since).await,
                None => break,
            },
            p = pushes.recv() => match p {
                Some(Push::Item { seq, msg, origin }) => match feed.item(seq, msg, origin).await {
                    Ok(msgs) => send_msgs(&mut sink, &msgs).await,
                    Err(e) => send(&mut sink, &ApiError::from(e).into_frame(None)).await,
                },
                Some(Push::Frame(f)) => send(&mut sink, &f).await,
                Some(Push::Resync) => match feed.fill().await {
                    Ok(msgs) => send_msgs(&mut sink, &msgs).await,
                    Err(e) => send(&mut sink, &ApiError::from(e).into_frame(None)).await,
                },
                None => break,
            },
        };
        if !ok {
            break;
        }
        unflushed += 1;
        let idle = out.is_empty() && pushes.is_empty();
        if idle || unflushed >= FLUSH_EVERY {
            unflushed = 0;
            if sink.flush().await.is_err() {
                break;
            }
        }
        if idle {
            if let Err(e) = feed.save_cursor(false).await {
                tracing::warn!(error = %e, "saving a device cursor failed");
            }
        }
    }
    let _ = sink.flush().await;
    let _ = feed.save_cursor(true).await;
}

async fn replay<W: Sink<Message> + Unpin>(
    sink: &mut W,
    feed: &mut Feed,
    since: Option<u64>,
) -> bool {
    if let Err(e) = feed.sync(since).await {
        return send(sink, &ApiError::from(e).into_frame(None)).await;
    }
    while feed.catching_up() {
        match feed.backlog().await {
            Ok(msgs) => {
                if !send_msgs(sink, &msgs).await {
                    return false;
                }
            }
            Err(e) => return send(sink, &ApiError::from(e).into_frame(None)).await,
        }
    }
    true
}

/// Queues `msg` frames; false once the socket is gone.
async fn send_msgs<W: Sink<Message> + Unpin>(sink: &mut W, msgs: &Msgs) -> bool {
    for (seq, m) in msgs {
        if sink
            .feed(Message::Text(m.render(Some(*seq)).into()))
            .await
            .is_err()
        {
            return false;
        }
        metrics::delivered(m.frame.ts);
    }
    true
}

/// Queues one frame (the loop flushes); false once the socket is gone.
async fn send<W: Sink<Message> + Unpin>(sink: &mut W, frame: &ServerFrame) -> bool {
    let json = serde_json::to_string(frame).expect("server frames serialize");
    sink.feed(Message::Text(json.into())).await.is_ok()
}
