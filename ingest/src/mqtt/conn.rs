//! One MQTT connection: CONNECT and its authentication, then the session,
//! run as a client of the socket code ([`crate::socket::serve`]) through
//! the [`Bridge`]. Generic over a byte stream and sink, so TCP, TLS and
//! MQTT over WebSocket share it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use bytes::{Bytes, BytesMut};
use futures::future::FusedFuture;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use parley_engines::telemetry::emit;
use tokio::time::{sleep_until, timeout, Instant};

use super::auth::authenticate;
use super::bridge::{Actions, Bridge};
use super::codec::{Codec, DecodeError, In, Out, Reason, Version};
use super::events::{MqttConnect, MqttPacket, MqttRefused, MqttSession};
use crate::auth::Caller;
use crate::edge::Edge;
use crate::internal_events::{Limit, LimitHit};

/// Client frames decoded but not yet taken by the socket's reader; past
/// this many, or [`FORWARD_BYTES`], the connection stops reading (the
/// reader is busy appending).
const FORWARD_QUEUE: usize = 64;
/// The bytes of those frames: packets are up to `mqtt_max_packet`, so a
/// count alone let one connection hold 64 of them.
const FORWARD_BYTES: usize = 1 << 20;
/// Frames handed to the socket's reader and not yet read: each may be a
/// whole packet, so few.
const HANDED: usize = 2;

/// Whether the connection may decode and read more.
fn room(queue: &VecDeque<Message>) -> bool {
    let bytes: usize = queue
        .iter()
        .map(|m| match m {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        })
        .sum();
    queue.len() < FORWARD_QUEUE && bytes < FORWARD_BYTES
}

/// PUBACKs are confirmed to the socket in one `received` per this many,
/// or after [`CONFIRM_AFTER`]: a later confirmation only means more is
/// sent again after a reconnect, and each one costs the socket a frame.
const CONFIRM_EVERY: usize = 64;
const CONFIRM_AFTER: Duration = Duration::from_millis(100);

/// Writes to the client, encoded as packets come.
struct Writer<W> {
    sink: W,
    codec: Codec,
    buf: BytesMut,
    timeout: Duration,
}

impl<W: Sink<Bytes, Error = io::Error> + Unpin> Writer<W> {
    fn put(&mut self, out: Out) {
        let kind = out.kind();
        match self.codec.encode(out, &mut self.buf) {
            Ok(()) => emit(MqttPacket {
                inbound: false,
                kind,
            }),
            // Larger than the client takes (its MQTT 5 maximum): left out.
            Err(e) => tracing::debug!(error = %e, "an MQTT packet was not written"),
        }
    }

    /// Sends what was put; false once the client is gone or stopped reading.
    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let bytes = self.buf.split().freeze();
        match timeout(self.timeout, self.sink.send(bytes)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                emit(LimitHit {
                    limit: Limit::SlowReader,
                });
                false
            }
        }
    }

    /// Ends the connection: MQTT 5 hears why, 3.1.1 is closed.
    async fn close(&mut self, reason: Reason, why: String) {
        self.put(Out::Disconnect {
            reason,
            text: Some(why),
        });
        self.flush().await;
        let _ = timeout(Duration::from_secs(1), self.sink.close()).await;
    }
}

/// Serves one MQTT connection from `peer` (`None`: loopback or unknown,
/// exempt from the per-address limit as on the HTTP edge).
pub(crate) async fn serve<R, W>(edge: Arc<Edge>, peer: Option<IpAddr>, mut rx: R, sink: W)
where
    R: Stream<Item = io::Result<Bytes>> + Unpin + Send,
    W: Sink<Bytes, Error = io::Error> + Unpin + Send,
{
    let limits = edge.limits().clone();
    let mut codec = Codec::new(limits.mqtt_max_packet);
    let mut buf = BytesMut::new();
    let first = timeout(
        limits.header_timeout(),
        next_packet(&mut rx, &mut codec, &mut buf),
    )
    .await;
    let mut w = Writer {
        sink,
        // Until a CONNECT is read, refusals go out as 3.1.1's.
        codec: Codec::new(limits.mqtt_max_packet),
        buf: BytesMut::new(),
        timeout: limits.write_timeout(),
    };
    let connect = match first {
        Ok(Ok(Some(In::Connect(c)))) => c,
        Ok(Ok(Some(_))) => {
            return refused(
                &mut w,
                Reason::ProtocolError,
                "the first packet must be CONNECT",
            )
            .await
        }
        Ok(Err(e)) => return refused(&mut w, e.reason, &e.message).await,
        Ok(Ok(None)) => return,
        Err(_) => {
            emit(MqttRefused {
                reason: Reason::MalformedPacket,
                why: "no CONNECT within the header deadline",
                closed: true,
            });
            return;
        }
    };
    // The writer follows the version the CONNECT was read with.
    let version = connect.version;
    w.codec = Codec::for_version(version, limits.mqtt_max_packet);
    if let Some(max) = connect.max_packet_size {
        w.codec.limit_out(max);
    }
    if let Some(ip) = peer {
        if edge.guard().mqtt_connects_per_ip.check(&ip).is_err() {
            return refused(
                &mut w,
                Reason::ConnectionRateExceeded,
                "too many connections from this address",
            )
            .await;
        }
    }
    let (caller, assigned) = match authenticate(&edge, &connect, peer).await {
        Ok(c) => c,
        Err((reason, why)) => return refused(&mut w, reason, &why).await,
    };
    let slot = match edge.sockets().admit(caller.user, &limits) {
        Ok(s) => s,
        Err(e) => return refused(&mut w, Reason::ServerBusy, &e.message).await,
    };
    let claim = edge.sockets().claim_mqtt(caller.user, caller.device);
    let window = usize::from(
        connect
            .receive_max
            .unwrap_or(u16::MAX)
            .min(limits.mqtt_inflight)
            .max(1),
    );
    // The socket code closes a reader silent past its idle timeout; this
    // connection keeps it fed while the client keeps to its keep-alive,
    // which an MQTT 5 client is held to below that timeout.
    let idle = limits.idle_timeout();
    let keep_alive = Duration::from_secs(u64::from(connect.keep_alive));
    let server_keep_alive = (version == Version::V5
        && (keep_alive.is_zero() || keep_alive * 3 / 2 > idle))
        .then(|| (idle.as_secs() * 2 / 3).clamp(1, u64::from(u16::MAX)) as u16);
    let silent_max = match server_keep_alive {
        Some(s) => Duration::from_secs(u64::from(s)) * 3 / 2,
        None if keep_alive.is_zero() => idle,
        None => keep_alive * 3 / 2,
    };
    w.put(Out::ConnAck {
        session_present: connect.resume,
        refused: None,
        assigned_client_id: assigned.map(|d| d.0.to_string()),
        receive_max: limits.mqtt_inflight.max(1),
        max_packet_size: limits.mqtt_max_packet,
        server_keep_alive,
        text: None,
    });
    emit(MqttConnect {
        result: Ok(()),
        why: "",
    });
    if !w.flush().await {
        return;
    }
    emit(MqttSession { open: true });
    let session = Session {
        edge: edge.clone(),
        bridge: Bridge::new(version, connect.resume, window),
        confirm: None,
        silent_max,
        ping_every: limits.ping_every(),
    };
    session.run(caller, rx, codec, buf, w, claim).await;
    drop(slot);
    emit(MqttSession { open: false });
}

async fn refused<W>(w: &mut Writer<W>, reason: Reason, why: &str)
where
    W: Sink<Bytes, Error = io::Error> + Unpin,
{
    emit(MqttConnect {
        result: Err(reason),
        why,
    });
    if w.codec.version().is_some() || reason == Reason::UnsupportedProtocolVersion {
        w.put(Out::ConnAck {
            session_present: false,
            refused: Some(reason),
            assigned_client_id: None,
            receive_max: 1,
            max_packet_size: 0,
            server_keep_alive: None,
            text: Some(why.to_owned()),
        });
        w.flush().await;
    }
    let _ = timeout(Duration::from_secs(1), w.sink.close()).await;
}

/// Reads until a whole packet is in `buf`; `None` when the client is gone.
async fn next_packet<R>(
    rx: &mut R,
    codec: &mut Codec,
    buf: &mut BytesMut,
) -> Result<Option<In>, DecodeError>
where
    R: Stream<Item = io::Result<Bytes>> + Unpin,
{
    loop {
        if let Some(p) = codec.decode(buf)? {
            return Ok(Some(p));
        }
        match rx.next().await {
            Some(Ok(b)) => buf.extend_from_slice(&b),
            Some(Err(_)) | None => return Ok(None),
        }
    }
}

struct Session {
    edge: Arc<Edge>,
    bridge: Bridge,
    /// The seq acknowledged PUBACKs confirm, not yet told to the socket;
    /// how many acknowledgements it covers, and when it is told at last.
    confirm: Option<(u64, usize, Instant)>,
    /// Silence after which the client is gone.
    silent_max: Duration,
    /// How often the socket's reader hears the client is alive.
    ping_every: Duration,
}

impl Session {
    async fn run<R, W>(
        mut self,
        caller: Caller,
        mut rx: R,
        mut codec: Codec,
        mut buf: BytesMut,
        mut w: Writer<W>,
        claim: crate::edge::sockets::MqttClaim,
    ) where
        R: Stream<Item = io::Result<Bytes>> + Unpin + Send,
        W: Sink<Bytes, Error = io::Error> + Unpin + Send,
    {
        // The socket code, as for a WebSocket: frames in, frames out.
        let (to_socket, socket_in) = tokio::sync::mpsc::channel::<Message>(HANDED);
        let (socket_out, mut from_socket) = futures::channel::mpsc::channel::<Message>(16);
        let socket_in = tokio_stream_of(socket_in);
        // Polled by this task, not spawned: a frame handed to the socket's
        // reader wakes no other task (its writer is a task of its own).
        let socket =
            crate::socket::serve(self.edge.clone(), caller, None, socket_out, socket_in).fuse();
        let mut socket = std::pin::pin!(socket);
        let mut queue: VecDeque<Message> = VecDeque::new();
        if self.bridge.subscribed() {
            queue.push_back(Message::Text(r#"{"type":"sync"}"#.into()));
        }
        let mut heard = Instant::now();
        let mut alive = tokio::time::interval(self.ping_every);
        alive.reset();
        let close: Option<(Reason, String)> = loop {
            // Decode what was read, as far as the reader keeps up.
            let mut end = None;
            while room(&queue) && end.is_none() {
                match codec.decode(&mut buf) {
                    Ok(Some(p)) => {
                        emit(MqttPacket {
                            inbound: true,
                            kind: p.kind(),
                        });
                        end = self.packet(p, &mut queue, &mut w);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if e.reason == Reason::PacketTooLarge {
                            emit(LimitHit {
                                limit: Limit::MqttPacketSize,
                            });
                        }
                        end = Some(Some((e.reason, e.message)));
                    }
                }
            }
            if let Some(end) = end {
                break end;
            }
            if !w.flush().await {
                break None;
            }
            tokio::select! {
                chunk = rx.next(), if room(&queue) => match chunk {
                    Some(Ok(b)) => {
                        heard = Instant::now();
                        buf.extend_from_slice(&b);
                    }
                    Some(Err(_)) | None => break None,
                },
                permit = to_socket.reserve(), if !queue.is_empty() => match permit {
                    Ok(p) => p.send(queue.pop_front().expect("not empty")),
                    Err(_) => break None,
                },
                m = from_socket.next(), if !self.bridge.full() => {
                    // What else the socket wrote goes out in the same write.
                    let mut next = m;
                    let end = loop {
                        match next {
                            Some(Message::Text(t)) => {
                                let a = self.bridge.server_frame(t.to_string());
                                if let Some(end) = apply(a, &mut queue, &mut w) {
                                    break Some(end);
                                }
                            }
                            Some(Message::Close(frame)) => break Some(Some(socket_closed(frame))),
                            Some(_) => {}
                            None => break Some(self.ended()),
                        }
                        if self.bridge.full() {
                            break None;
                        }
                        match from_socket.try_recv() {
                            Ok(m) => next = Some(m),
                            Err(_) => break None,
                        }
                    };
                    if let Some(end) = end {
                        break end;
                    }
                }
                // The socket ended while this waited on the client (a full
                // window): why is in what it wrote last.
                _ = socket.as_mut(), if !socket.is_terminated() => {
                    let mut why = self.ended();
                    while let Ok(m) = from_socket.try_recv() {
                        if let Message::Close(frame) = m {
                            why = Some(socket_closed(frame));
                        }
                    }
                    // Its close frame did not fit: the client holds the window.
                    if why.is_none() && self.bridge.full() {
                        why = Some(socket_closed(Some(axum::extract::ws::CloseFrame {
                            code: 1013,
                            reason: "not acknowledging; reconnect and sync".into(),
                        })));
                    }
                    break why;
                }
                _ = sleep_until(heard + self.silent_max) => {
                    emit(LimitHit { limit: Limit::MqttKeepAlive });
                    break Some((Reason::KeepAliveTimeout, "nothing heard within 1.5 keep-alives".into()));
                }
                _ = alive.tick() => {
                    // Keeps the socket's idle timer from closing a client
                    // that keeps to its keep-alive; dropped if it is busy.
                    let _ = to_socket.try_send(Message::Pong(Bytes::new()));
                }
                _ = sleep_until(self.confirm.map_or_else(Instant::now, |c| c.2)),
                    if self.confirm.is_some() => self.confirmed(&mut queue),
                _ = claim.taken_over.cancelled() => {
                    break Some((Reason::SessionTakenOver, "another connection of this device took over".into()));
                }
            }
        };
        if let Some((reason, why)) = close {
            emit(MqttRefused {
                reason,
                why: &why,
                closed: true,
            });
            w.close(reason, why).await;
        } else {
            w.flush().await;
        }
        self.confirmed(&mut queue);
        // What the client said last (its final PUBACKs above all) still
        // reaches the socket's reader; what the socket writes meanwhile is
        // dropped (it stays unconfirmed). The socket then ends: its reader
        // sees the end, its writer saves the device's confirmed cursor.
        let forward_rest = async move {
            for m in queue {
                if to_socket.send(m).await.is_err() {
                    break;
                }
            }
        };
        let discard = async { while from_socket.next().await.is_some() {} };
        let ending = async {
            if !socket.is_terminated() {
                socket.as_mut().await;
            }
        };
        let _ = timeout(w.timeout, async {
            tokio::join!(forward_rest, discard, ending)
        })
        .await;
        drop(from_socket);
        if !socket.is_terminated() {
            socket.as_mut().await;
        }
    }

    /// Tells the socket what the client's PUBACKs confirm.
    fn confirmed(&mut self, queue: &mut VecDeque<Message>) {
        if let Some((seq, _, _)) = self.confirm.take() {
            let frame = format!(r#"{{"type":"received","seq":{seq}}}"#);
            queue.push_back(Message::Text(frame.into()));
        }
    }

    /// Why the session ends when the socket ended without a close frame.
    fn ended(&self) -> Option<(Reason, String)> {
        self.edge.stopping().is_cancelled().then(|| {
            (
                Reason::ServerShuttingDown,
                "the server is stopping".to_owned(),
            )
        })
    }

    /// Handles one client packet; `Some` ends the connection (with a
    /// reason to send, or none for a plain close).
    fn packet<W>(
        &mut self,
        p: In,
        queue: &mut VecDeque<Message>,
        w: &mut Writer<W>,
    ) -> Option<Option<(Reason, String)>>
    where
        W: Sink<Bytes, Error = io::Error> + Unpin,
    {
        let a = match p {
            In::Publish(p) => self.bridge.publish(*p),
            In::PubAck(id) => {
                if let Some(seq) = self.bridge.puback(id).confirm {
                    let (count, at) = match self.confirm {
                        Some((_, n, at)) => (n + 1, at),
                        None => (1, Instant::now() + CONFIRM_AFTER),
                    };
                    self.confirm = Some((seq, count, at));
                    if count >= CONFIRM_EVERY {
                        self.confirmed(queue);
                    }
                }
                return None;
            }
            In::Subscribe { packet_id, filters } => self.bridge.subscribe(packet_id, filters),
            In::Unsubscribe { packet_id, filters } => self.bridge.unsubscribe(packet_id, filters),
            In::PingReq => {
                w.put(Out::PingResp);
                // The keep-alive is the device's background heartbeat.
                Actions {
                    forward: vec![r#"{"type":"heartbeat","active":false}"#.into()],
                    ..Actions::default()
                }
            }
            In::Disconnect => return Some(None),
            In::Connect(_) => {
                return Some(Some((Reason::ProtocolError, "a second CONNECT".into())))
            }
            In::Unexpected(what) => {
                return Some(Some((
                    Reason::ProtocolError,
                    format!(
                        "a {what} packet is not expected from a client (QoS 2 is not supported)"
                    ),
                )))
            }
        };
        apply(a, queue, w)
    }
}

/// The socket's close frame as a DISCONNECT reason: signed out (1008), or
/// a client that stopped acknowledging (1013, a slow reader).
fn socket_closed(frame: Option<axum::extract::ws::CloseFrame>) -> (Reason, String) {
    let (code, why) = frame.map_or((0, String::new()), |f| (f.code, f.reason.to_string()));
    if code == 1013 {
        emit(LimitHit {
            limit: Limit::MqttInflight,
        });
        (Reason::QuotaExceeded, why)
    } else {
        (Reason::NotAuthorized, why)
    }
}

/// Carries out what the bridge asked; `Some` ends the connection.
fn apply<W>(
    a: Actions,
    queue: &mut VecDeque<Message>,
    w: &mut Writer<W>,
) -> Option<Option<(Reason, String)>>
where
    W: Sink<Bytes, Error = io::Error> + Unpin,
{
    for out in a.out {
        w.put(out);
    }
    queue.extend(a.forward.into_iter().map(|t| Message::Text(t.into())));
    if let Some((reason, why)) = a.refused {
        emit(MqttRefused {
            reason,
            why: &why,
            closed: false,
        });
    }
    a.close.map(Some)
}

/// A tokio receiver as the `Stream` of results the socket code reads.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Message>,
) -> impl Stream<Item = Result<Message, Infallible>> + Unpin + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|m| m.map(Ok)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_stops_at_a_mebibyte_of_waiting_frames_or_64_of_them() {
        let frame = |n: usize| Message::Binary(Bytes::from(vec![b'x'; n]));
        // Two frames of half a MiB: the bound, though only two are queued.
        let mut queue: VecDeque<Message> = (0..2).map(|_| frame(FORWARD_BYTES / 2)).collect();
        assert!(!room(&queue));
        queue.pop_back();
        assert!(room(&queue));
        // Small frames: the count bounds them.
        let mut queue: VecDeque<Message> = (0..FORWARD_QUEUE - 1).map(|_| frame(10)).collect();
        assert!(room(&queue));
        queue.push_back(Message::Text("{}".into()));
        assert!(!room(&queue));
    }
}
