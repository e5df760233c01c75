//! One socket's writer: it owns the sink and the device's [`Feed`], and
//! writes what the reader asks for (answers, `sync` replays) and what is
//! pushed to the device, in bursts. A client that stops reading is closed
//! once a write has waited [`Limits::write_timeout`]; what it was sent but
//! never confirmed stays unconfirmed, so it loses nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures::{Sink, SinkExt};
use parley_engines::push::Push;
use parley_engines::telemetry::emit;
use parley_schemas::wire::{Expired, ServerFrame};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};

use super::feed::{Feed, Msgs};
use super::hub::Pushes;
use crate::error::ApiError;
use crate::internal_events::{EdgeTrouble, Limit, LimitHit, MsgDelivered, PushWritten};
use crate::limits::Limits;

/// What the reader asks the writer to do.
pub(super) enum Out {
    /// A frame's JSON, holding its bytes of the outbox's budget.
    Text(String, Option<OwnedSemaphorePermit>),
    Sync(Option<u64>),
    Received(u64),
}

/// The reader's end of the queue to the writer, bounded in bytes: a client
/// that asks for much (history pages) and reads nothing holds at most
/// [`Limits::out_bytes`] here, and its reads stop until the writer drains.
#[derive(Clone)]
pub(super) struct Outbox {
    tx: mpsc::Sender<Out>,
    budget: Arc<Semaphore>,
    max: usize,
}

impl Outbox {
    pub(super) fn new(limits: &Limits) -> (Outbox, mpsc::Receiver<Out>) {
        let (tx, rx) = mpsc::channel(64);
        let max = limits.out_bytes.max(1);
        let budget = Arc::new(Semaphore::new(max));
        (Outbox { tx, budget, max }, rx)
    }

    /// Queues a frame; false once the writer is gone.
    pub(super) async fn frame(&self, frame: &ServerFrame) -> bool {
        let json = render(frame);
        // A frame larger than the whole budget waits for all of it.
        let n = json.len().clamp(1, self.max) as u32;
        let Ok(permit) = self.budget.clone().acquire_many_owned(n).await else {
            return false;
        };
        self.tx.send(Out::Text(json, Some(permit))).await.is_ok()
    }

    pub(super) async fn control(&self, o: Out) -> bool {
        self.tx.send(o).await.is_ok()
    }
}

/// Frames are queued in the socket's buffer and written out when nothing
/// more is waiting, or after this many: a burst costs one write, not one
/// per frame, and a steady stream still goes out promptly.
const FLUSH_EVERY: usize = 64;

/// How long a writer waits before reading its backlog again after the
/// store failed.
const STORE_RETRY: Duration = Duration::from_millis(500);

/// Why the writer stopped.
enum Stop {
    /// The queues closed: the reader is done.
    Done,
    /// The socket failed.
    Gone,
    /// A write waited too long: the client does not read.
    Stuck,
    /// The device signed out.
    SignedOut,
}

pub(super) struct Writer<W> {
    sink: W,
    limits: Limits,
    unflushed: usize,
}

pub(super) async fn write_loop<W: Sink<Message> + Unpin>(
    sink: W,
    limits: Limits,
    mut out: mpsc::Receiver<Out>,
    mut pushes: Pushes,
    mut feed: Feed,
) {
    let mut w = Writer {
        sink,
        limits,
        unflushed: 0,
    };
    let mut ping = tokio::time::interval(w.limits.ping_every());
    ping.reset();
    let stop = loop {
        let save_at = feed.save_due();
        let step = tokio::select! {
            biased;
            o = out.recv() => match o {
                Some(Out::Text(json, _permit)) => w.text(json).await,
                Some(Out::Sync(since)) => match feed.sync(since).await {
                    Ok(()) => Ok(()),
                    Err(e) => w.frame(&ApiError::from(e).into_frame(None)).await,
                },
                Some(Out::Received(seq)) => {
                    feed.received(seq);
                    Ok(())
                }
                None => Err(Stop::Done),
            },
            p = pushes.recv() => match p {
                Some(Push::Item { seq, msg, origin }) => {
                    let msgs = feed.item(seq, msg, origin);
                    let r = w.msgs(&msgs).await;
                    if !msgs.is_empty() {
                        emit(PushWritten { waited: pushes.waited() });
                    }
                    r
                }
                Some(Push::Frame(f)) => w.frame(&f).await,
                Some(Push::Resync) => w.refresh(&mut feed).await,
                Some(Push::SignedOut(_)) => Err(Stop::SignedOut),
                None => Err(Stop::Done),
            },
            // What was not sent yet goes out a page at a time, after
            // whatever else is waiting.
            _ = std::future::ready(()), if feed.behind() => match feed.page().await {
                Ok(msgs) => match feed.take_expired() {
                    Some(up_to_seq) => {
                        let gone = ServerFrame::Expired(Expired { up_to_seq });
                        match w.frame(&gone).await {
                            Ok(()) => w.msgs(&msgs).await,
                            Err(e) => Err(e),
                        }
                    }
                    None => w.msgs(&msgs).await,
                },
                Err(e) => {
                    // The store is down: say so once a while, not in a spin.
                    let r = w.frame(&ApiError::from(e).into_frame(None)).await;
                    tokio::time::sleep(STORE_RETRY).await;
                    r
                }
            },
            _ = ping.tick() => w.send(Message::Ping(Default::default())).await,
            _ = sleep_until(Instant::from_std(save_at.unwrap_or_else(std::time::Instant::now))),
                if save_at.is_some() => {
                save(&mut feed, false).await;
                Ok(())
            }
        };
        if let Err(stop) = step {
            break stop;
        }
        if pushes.is_empty() && pushes.missed() {
            if let Err(stop) = w.refresh(&mut feed).await {
                break stop;
            }
        }
        let idle = out.is_empty() && pushes.is_empty() && !feed.behind();
        if let Err(stop) = w.flush(idle).await {
            break stop;
        }
    };
    // Stored before the close handshake completes (the server's close
    // frame goes out with the flush below): a device that confirmed and
    // then closed cleanly finds its cursor stored when it reconnects.
    save(&mut feed, true).await;
    match stop {
        Stop::Stuck => {
            emit(LimitHit {
                limit: Limit::SlowReader,
            });
            // Best effort: the socket may not take even this.
            let close = Message::Close(Some(CloseFrame {
                code: 1013,
                reason: "not reading; reconnect and sync".into(),
            }));
            let _ = timeout(Duration::from_secs(1), w.sink.send(close)).await;
        }
        Stop::SignedOut => {
            let close = Message::Close(Some(CloseFrame {
                code: 1008,
                reason: "signed out".into(),
            }));
            let _ = timeout(Duration::from_secs(1), w.sink.send(close)).await;
        }
        Stop::Done => {
            let _ = timeout(w.limits.write_timeout(), w.sink.flush()).await;
        }
        Stop::Gone => {}
    }
}

async fn save(feed: &mut Feed, force: bool) {
    if let Err(e) = feed.save_cursor(force).await {
        emit(EdgeTrouble::CursorNotSaved { error: &e });
    }
}

impl<W: Sink<Message> + Unpin> Writer<W> {
    /// Queues one message; the loop flushes.
    async fn send(&mut self, m: Message) -> Result<(), Stop> {
        match timeout(self.limits.write_timeout(), self.sink.feed(m)).await {
            Ok(Ok(())) => {
                self.unflushed += 1;
                Ok(())
            }
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::Stuck),
        }
    }

    /// Writes out what is queued when nothing more waits, or after
    /// [`FLUSH_EVERY`] frames.
    async fn flush(&mut self, idle: bool) -> Result<(), Stop> {
        if self.unflushed == 0 || !(idle || self.unflushed >= FLUSH_EVERY) {
            return Ok(());
        }
        self.unflushed = 0;
        match timeout(self.limits.write_timeout(), self.sink.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::Stuck),
        }
    }

    async fn text(&mut self, json: String) -> Result<(), Stop> {
        self.send(Message::Text(json.into())).await
    }

    async fn frame(&mut self, frame: &ServerFrame) -> Result<(), Stop> {
        self.text(render(frame)).await
    }

    async fn msgs(&mut self, msgs: &Msgs) -> Result<(), Stop> {
        for (seq, m) in msgs {
            self.text(m.render(Some(*seq))).await?;
            emit(MsgDelivered {
                appended_ms: m.frame.ts,
            });
        }
        Ok(())
    }

    async fn refresh(&mut self, feed: &mut Feed) -> Result<(), Stop> {
        match feed.refresh().await {
            Ok(()) => Ok(()),
            Err(e) => self.frame(&ApiError::from(e).into_frame(None)).await,
        }
    }
}

/// Writes one frame straight to a sink with no writer yet (a socket that
/// failed to open); false once the socket is gone.
pub(super) async fn send<W: Sink<Message> + Unpin>(sink: &mut W, frame: &ServerFrame) -> bool {
    sink.feed(Message::Text(render(frame).into())).await.is_ok()
}

fn render(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).expect("server frames serialize")
}
