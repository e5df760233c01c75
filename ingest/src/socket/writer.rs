//! One socket's writer: it owns the sink and the device's [`Feed`], and
//! writes what the reader asks for (answers, `sync` replays) and what is
//! pushed to the device, in bursts.

use axum::extract::ws::Message;
use futures::{Sink, SinkExt};
use parley_engines::push::Push;
use parley_engines::telemetry::emit;
use parley_schemas::wire::ServerFrame;
use tokio::sync::mpsc;

use super::feed::{Feed, Msgs};
use crate::error::ApiError;
use crate::internal_events::{EdgeTrouble, MsgDelivered};

/// What the reader asks the writer to do.
pub(super) enum Out {
    Frame(ServerFrame),
    Sync(Option<u64>),
}

/// Frames are queued in the socket's buffer and written out when nothing
/// more is waiting, or after this many: a burst costs one write, not one
/// per frame, and a steady stream still goes out promptly.
const FLUSH_EVERY: usize = 64;

pub(super) async fn write_loop<W: Sink<Message> + Unpin>(
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
                emit(EdgeTrouble::CursorNotSaved { error: &e });
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
        emit(MsgDelivered {
            appended_ms: m.frame.ts,
        });
    }
    true
}

/// Queues one frame (the loop flushes); false once the socket is gone.
pub(super) async fn send<W: Sink<Message> + Unpin>(sink: &mut W, frame: &ServerFrame) -> bool {
    let json = serde_json::to_string(frame).expect("server frames serialize");
    sink.feed(Message::Text(json.into())).await.is_ok()
}
