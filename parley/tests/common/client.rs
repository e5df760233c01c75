//! The protocol's WebSocket client for tests: send frames, wait for the
//! ones expected (keeping the others), close cleanly or reset.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{text_to, WAIT};

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while looking for another type, in order.
    pub skipped: Vec<Value>,
}

impl Client {
    pub async fn connect(url: &str, token: &str) -> Client {
        Client::try_connect(url, token)
            .await
            .expect("websocket upgrade")
    }

    /// As [`connect`](Self::connect), but `None` if the server is gone.
    pub async fn try_connect(url: &str, token: &str) -> Option<Client> {
        let ws_url = format!("{}/v1/ws?token={token}", url.replace("http://", "ws://"));
        let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.ok()?;
        Some(Client {
            ws,
            skipped: Vec::new(),
        })
    }

    pub async fn send(&mut self, v: Value) {
        self.send_raw(v.to_string()).await;
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// Sends; false if the socket is gone.
    pub async fn try_send(&mut self, v: Value) -> bool {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .is_ok()
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.ws.send(Message::Binary(data.into())).await.unwrap();
    }

    /// The next frame, whatever it is.
    pub async fn next(&mut self) -> Value {
        self.next_within().await.expect("a frame within the wait")
    }

    /// The next frame, or `None` after [`WAIT`] without one.
    async fn next_within(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .ok()?
                .expect("the socket is open")
                .expect("a readable frame");
            match msg {
                Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                Message::Close(c) => panic!("socket closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next text frame, or `None` once the socket is gone. Safe to
    /// cancel (in a `select!`): no frame is lost.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next frame of type `ty`; others are kept in `skipped`.
    pub async fn expect(&mut self, ty: &str) -> Value {
        loop {
            // What came instead says why the awaited frame did not.
            let Some(v) = self.next_within().await else {
                panic!("no {ty} frame within {WAIT:?}; skipped: {:?}", self.skipped);
            };
            if v["type"] == ty {
                return v;
            }
            self.skipped.push(v);
        }
    }

    /// As [`expect`](Self::expect), but `None` once the socket is gone
    /// (the server was killed).
    pub async fn try_expect(&mut self, ty: &str) -> Option<serde_json::Value> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .ok()??
                .ok()?
            {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).ok()?;
                    if v["type"] == ty {
                        return Some(v);
                    }
                    self.skipped.push(v);
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Whether any frame of type `ty` arrives within `wait`.
    pub async fn quiet(&mut self, ty: &str, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == ty {
                        return false;
                    }
                    self.skipped.push(v);
                }
                Ok(Some(Ok(_))) => {}
                Ok(_) => panic!("socket closed"),
            }
        }
    }

    /// Sends a text message; its answer, the `ack` or the `error`.
    pub async fn try_say(&mut self, to: &str, cid: &str, text: &str) -> Value {
        self.send(text_to(to, cid, text)).await;
        loop {
            let f = self.next().await;
            if matches!(f["type"].as_str(), Some("ack" | "error")) {
                return f;
            }
        }
    }

    /// Sends a text message until it is acked: while the answer is
    /// `unavailable` (a backend restarting, a partition between owners) it
    /// goes again with the same client_msg_id, as a client sends it; any
    /// other error, or `unavailable` for longer than [`WAIT`], fails.
    pub async fn say_until_acked(&mut self, to: &str, cid: &str, text: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let f = self.try_say(to, cid, text).await;
            if f["type"] == "ack" {
                return f;
            }
            assert_eq!(f["code"], "unavailable", "{f}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "{cid} still unavailable after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a text message and returns its ack.
    pub async fn say(&mut self, to: &str, cid: &str, text: &str) -> Value {
        self.send(text_to(to, cid, text)).await;
        let ack = self.expect("ack").await;
        assert_eq!(ack["client_msg_id"], cid);
        ack
    }

    /// Closes cleanly and waits for the server's close frame, as a client
    /// that wants its last `received` stored does (the server stores it
    /// before it answers the close).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let drained = async { while let Some(Ok(_)) = self.ws.next().await {} };
        let _ = tokio::time::timeout(WAIT, drained).await;
    }

    /// Kills the connection as a dying network does: a TCP reset, no
    /// close handshake, whatever was unread lost with it.
    pub fn reset(self) {
        if let MaybeTlsStream::Plain(tcp) = self.ws.get_ref() {
            tcp.set_zero_linger().expect("SO_LINGER");
        }
        drop(self);
    }
}
