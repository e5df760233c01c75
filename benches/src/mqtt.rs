//! The load generator's MQTT clients (3.1.1, packets by `rmqtt-codec`):
//! against Parley's MQTT edge (a sender publishes `send` frames to
//! `parley/send`, its PUBACK is the ack; a receiver subscribes to
//! `parley/me` and PUBACKs each `msg`, which confirms it), or against a
//! plain broker as the peer (pair i publishes to `bench/i` at QoS 1, its
//! receiver subscribes to it; nothing is stored).

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use rmqtt_codec::types::{Publish, QoS};
use rmqtt_codec::v3::{Codec, Connect, Packet};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

use crate::load::{Ledger, Schedule, Shared};

pub type Writer = SplitSink<Framed<TcpStream, Codec>, Packet>;
pub type Reader = SplitStream<Framed<TcpStream, Codec>>;

/// Where the load goes.
#[derive(Clone)]
pub enum Target {
    /// Parley's MQTT listener; users are made over HTTP first.
    Parley,
    /// A broker relaying `bench/<pair>`.
    Broker,
}

/// A connected, accepted MQTT 3.1.1 client.
pub async fn connect(addr: &str, user: Option<(&str, &str)>) -> Result<(Writer, Reader)> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (mut w, mut r) = Framed::new(tcp, Codec::new(0)).split();
    let connect = Connect {
        protocol: Default::default(),
        clean_session: true,
        keep_alive: 60,
        last_will: None,
        client_id: format!("lg{:x}", crate::rand_suffix()).into(),
        username: user.map(|(u, _)| u.into()),
        password: user.map(|(_, p)| Bytes::from(p.to_owned())),
        cert: None,
    };
    w.send(Packet::Connect(Box::new(connect))).await?;
    match r.next().await {
        Some(Ok((Packet::ConnectAck(a), _))) if a.return_code.reason() == "Connection Accepted" => {
            Ok((w, r))
        }
        other => bail!("CONNECT to {addr} not accepted: {other:?}"),
    }
}

/// Subscribes at QoS 1 and waits for the SUBACK.
pub async fn subscribe(w: &mut Writer, r: &mut Reader, topic: &str) -> Result<()> {
    w.send(Packet::Subscribe {
        packet_id: NonZeroU16::MIN,
        topic_filters: vec![(topic.into(), QoS::AtLeastOnce)],
    })
    .await?;
    match r.next().await {
        Some(Ok((Packet::SubscribeAck { .. }, _))) => Ok(()),
        other => bail!("SUBSCRIBE {topic}: {other:?}"),
    }
}

/// Each pair's sender and receiver, and where the sender publishes to
/// whom: (topic, the receiver's user id for Parley).
pub struct Pair {
    pub sender: (Writer, Reader),
    pub receiver: (Writer, Reader),
    pub topic: String,
    pub to: Option<String>,
}

/// The tasks of every pair: receivers that PUBACK what arrives, ack
/// readers that free the window, senders on their schedule.
pub fn run(
    pairs: Vec<Pair>,
    window: usize,
    shared: &Arc<Shared>,
    ledgers: &[Arc<Mutex<Ledger>>],
    stop: &Arc<Notify>,
    schedule: &impl Fn(usize) -> Schedule,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (i, pair) in pairs.into_iter().enumerate() {
        let (mut rw, mut rr) = pair.receiver;
        let (shared_r, ledger_r) = (Arc::clone(shared), ledgers[i].clone());
        let parley = pair.to.is_some();
        tasks.push(tokio::spawn(async move {
            use futures::FutureExt;
            loop {
                // PUBACKs go out in one write per burst read.
                let next = match rr.next().now_or_never() {
                    Some(n) => n,
                    None => {
                        if rw.flush().await.is_err() {
                            break;
                        }
                        rr.next().await
                    }
                };
                let Some(Ok((p, _))) = next else { break };
                let Packet::Publish(p) = p else { continue };
                let text = String::from_utf8_lossy(&p.payload);
                if parley {
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if v["type"] != "msg" {
                        continue;
                    }
                    shared_r.arrived(&ledger_r, v["body"]["text"].as_str().unwrap_or(""));
                } else {
                    shared_r.arrived(&ledger_r, &text);
                }
                if let Some(packet_id) = p.packet_id {
                    if rw.feed(Packet::PublishAck { packet_id }).await.is_err() {
                        break;
                    }
                }
            }
        }));
        let (mut sw, mut sr) = pair.sender;
        let window = Arc::new(Semaphore::new(window));
        let numbers: Arc<Mutex<HashMap<u16, u64>>> = Arc::default();
        let (shared_a, ledger_a, window_a, numbers_a) = (
            Arc::clone(shared),
            ledgers[i].clone(),
            window.clone(),
            numbers.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while let Some(Ok((p, _))) = sr.next().await {
                if let Packet::PublishAck { packet_id } = p {
                    let n = numbers_a.lock().unwrap().remove(&packet_id.get());
                    window_a.add_permits(1);
                    if let Some(n) = n {
                        shared_a.acked(&ledger_a, n);
                    }
                }
            }
        }));
        let (shared_s, stop) = (Arc::clone(shared), Arc::clone(stop));
        let mut schedule = schedule(i);
        let (topic, to) = (pair.topic, pair.to);
        tasks.push(tokio::spawn(async move {
            let stopped = stop.notified();
            tokio::pin!(stopped);
            for n in 0u64.. {
                let due = tokio::select! { d = schedule.next(&window) => d, _ = &mut stopped => break };
                let text = shared_s.body(due, n);
                let payload = match &to {
                    Some(rid) => json!({"client_msg_id": format!("{i}-{n}"), "to": {"user": rid}, "body": {"text": text}}).to_string(),
                    None => text,
                };
                let id = (n % u64::from(u16::MAX)) as u16 + 1;
                numbers.lock().unwrap().insert(id, n);
                let publish = Publish {
                    dup: false,
                    retain: false,
                    qos: QoS::AtLeastOnce,
                    topic: topic.as_str().into(),
                    packet_id: NonZeroU16::new(id),
                    payload: payload.into(),
                    properties: None,
                };
                if sw.send(Packet::Publish(Box::new(publish))).await.is_err() {
                    break;
                }
                shared_s.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tasks
}
