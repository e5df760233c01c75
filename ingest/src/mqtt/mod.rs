//! The MQTT edge (docs/mqtt.md): MQTT 3.1.1 and 5 clients, on a listener
//! of their own (`--mqtt-listen`, TLS as on the HTTP edge) or over
//! WebSocket at `/v1/mqtt` (subprotocol `mqtt`). A session is a device
//! like a WebSocket's: it signs in at CONNECT, publishes the protocol's
//! frames to topics named after them, and receives its inbox on
//! `parley/me`, where its PUBACKs are its `received` confirmations.
//!
//! Layout:
//! - this file: the accept loop, and MQTT over WebSocket;
//! - [`codec`]: MQTT 3.1.1 and 5 packets through one version-free
//!   vocabulary (over `rmqtt-codec`), and the topic mapping;
//! - `conn`: one connection: CONNECT, then the session's loop around the
//!   socket code that WebSockets use too; `auth`: who a CONNECT signs in;
//! - `bridge`: the mapping between MQTT packets and the JSON frames, and
//!   which acknowledgements confirm which inbox items (no I/O);
//! - `events`: connections, packets and refusals, logged and counted.

mod auth;
mod bridge;
pub mod codec;
mod conn;
mod events;

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{BytesCodec, FramedRead, FramedWrite};

use crate::edge::Edge;
use crate::error::ApiError;
use crate::http::{AppState, ClientIp};

/// Serves MQTT on `listener` (TLS when `tls` is set) until `shutdown`;
/// open sessions end with the edge's own stop, as its sockets do.
pub async fn serve(
    listener: TcpListener,
    edge: Arc<Edge>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let deadline = edge.limits().header_timeout();
    let opts = crate::serve::ServeOptions::plain(edge.limits());
    crate::serve::accept_loop(listener, &opts, shutdown, |tcp, peer, place| {
        let edge = edge.clone();
        let tls = tls.clone();
        let ip = Some(peer.ip()).filter(|ip| !ip.is_loopback());
        tokio::spawn(async move {
            let _place = place;
            match tls {
                None => serve_stream(edge, ip, tcp).await,
                Some(tls) => {
                    let by = tokio::time::Instant::now() + deadline;
                    if let Some(stream) = crate::serve::handshake(&tls, tcp, by).await {
                        serve_stream(edge, ip, stream).await;
                    }
                }
            }
        });
    })
    .await;
    Ok(())
}

/// A connection's read buffer to start with.
const READ_BUFFER: usize = 1024;

async fn serve_stream<S>(edge: Arc<Edge>, ip: Option<IpAddr>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    // Reads start small (FramedRead's default reserves 8 KiB on every
    // connection, most of an idle session's memory) and grow per read.
    let rx = FramedRead::with_capacity(rd, BytesCodec::new(), READ_BUFFER).map_ok(BytesMut::freeze);
    let tx = FramedWrite::new(wr, BytesCodec::new());
    conn::serve(edge, ip, rx, tx).await;
}

/// MQTT over WebSocket (subprotocol `mqtt`): the client signs in with its
/// CONNECT, so there is no token on the upgrade.
pub async fn upgrade(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.protocols(["mqtt"]);
    if upgrade.selected_protocol().is_none() {
        return Err(ApiError::bad_request(
            "MQTT over WebSocket needs the subprotocol \"mqtt\"",
        ));
    }
    let max = s.edge.limits().mqtt_max_packet as usize;
    Ok(upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(crate::http::WS_READ_BUFFER)
        .write_buffer_size(crate::http::WS_WRITE_BUFFER)
        .on_upgrade(move |socket| serve_websocket(s.edge, ip, socket)))
}

/// MQTT over WebSocket: each binary message carries bytes of the MQTT
/// stream (a packet may span messages).
pub async fn serve_websocket(edge: Arc<Edge>, ip: Option<IpAddr>, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let rx = stream
        .map_err(io::Error::other)
        .try_take_while(|m| std::future::ready(Ok(!matches!(m, Message::Close(_)))))
        .map_ok(|m| match m {
            Message::Binary(b) => b,
            // Text, pings and pongs carry no MQTT.
            _ => Bytes::new(),
        });
    let tx = sink
        .sink_map_err(io::Error::other)
        .with(|b: Bytes| std::future::ready(Ok::<_, io::Error>(Message::Binary(b))));
    conn::serve(edge, ip, Box::pin(rx), Box::pin(tx)).await;
}
