//! Benchmarks and load generators. Each figure they produce is recorded in
//! `docs/benchmarks.md` with the command that produced it.
//!
//! Layout:
//! - `benches/`: criterion benches (the codec, the embedded log).
//! - `src/bin/`: load generators and whole-system benches, each a binary:
//!   `parley-loadgen` (1:1 chat), `parley-group-bench` (group fan-out),
//!   `parley-presence-bench`, `parley-history-bench`,
//!   `parley-redis-memory`, `parley-socket-ceiling` (the transport alone),
//!   `parley-socket-memory` (server memory per idle socket, and under
//!   clients that never read), `parley-stages` (per-stage latency of a
//!   running node over a window, from its `/metrics`), `parley-media-bench`
//!   (upload and download MB/s with the server's RSS, thumbnails per
//!   second), `parley-plot` (loadgen timelines as SVG).
//! - `scripts/`: a private cluster for the multi-process runs; A/B runs of
//!   two builds; `stages.sh` and `profile.sh`, where the time goes under a
//!   given load; `spike.sh`; `vs-ejabberd.sh`; `common.sh`, what they all
//!   set and how they start `parley up`.
//! - [`load`]: what the load generator does the same for either protocol
//!   (rate profile, schedule, latency, lost and duplicate counts).
//! - [`mqtt`]: MQTT clients for `parley-loadgen --mqtt` (Parley's MQTT
//!   edge) and `--mqtt-broker` (a plain broker as the peer).
//! - [`xmpp`]: just enough XMPP for `parley-loadgen --xmpp` to drive
//!   ejabberd with the same load.
//! - this file: what the binaries share: sign-up and sign-in, WebSocket
//!   clients, reading `msg` frames cheaply, and a `parley up` child
//!   process with its RSS.

pub mod load;
pub mod mqtt;
pub mod xmpp;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Registers `name` (or finds it registered) and signs in: `(user_id, token)`.
pub async fn session(http: &reqwest::Client, url: &str, name: &str) -> Result<(String, String)> {
    let body = json!({"username": name, "password": "loadgen-password"});
    let r = http
        .post(format!("{url}/v1/users"))
        .json(&body)
        .send()
        .await?;
    if !r.status().is_success() && r.status() != 409 {
        bail!("register {name}: {}", r.status());
    }
    let v: Value = http
        .post(format!("{url}/v1/sessions"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        v["user_id"].as_str().context("user_id")?.to_owned(),
        v["token"].as_str().context("token")?.to_owned(),
    ))
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `url` (an `http://` base) with `token`.
pub async fn connect(url: &str, token: &str) -> Result<Ws> {
    let ws = format!("{}/v1/ws?token={token}", url.replacen("http", "ws", 1));
    // tungstenite zeroes its whole read buffer (128 KiB by default) before
    // each read; with thousands of clients on the server's cores that
    // memset was a sixth of the machine's time. Frames here are small.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    Ok(
        tokio_tungstenite::connect_async_with_config(ws, Some(config), false)
            .await
            .context("websocket connect")?
            .0,
    )
}

/// [`connect`], from the local address `from` (any of 127.0.0.0/8 for a
/// loopback server), so that more sockets than one address's ephemeral
/// ports can reach one server port.
pub async fn connect_from(url: &str, token: &str, from: std::net::Ipv4Addr) -> Result<Ws> {
    let ws = format!("{}/v1/ws?token={token}", url.replacen("http", "ws", 1));
    let host = url
        .split("://")
        .nth(1)
        .context("url")?
        .trim_end_matches('/');
    let addr: std::net::SocketAddr = host.parse().context("url must name IP:PORT")?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((from, 0).into())?;
    let tcp = socket.connect(addr).await.context("tcp connect")?;
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        ws,
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
        Some(config),
    )
    .await
    .context("websocket connect")?;
    Ok(ws)
}

/// The edge's limits for a load generator, which speaks for one user at
/// machine speed: per-user rates out of the way, every other limit as
/// shipped.
pub fn bench_limits() -> parley::Limits {
    parley::Limits {
        sends_per_sec: 1_000_000,
        sends_burst: 1_000_000,
        receipts_per_sec: 1_000_000,
        receipts_burst: 1_000_000,
        ..parley::Limits::default()
    }
}

/// A suffix that keeps user names of separate runs apart.
pub fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ std::process::id() as u64
}

/// The msg_id in a `msg` frame, found without parsing the whole frame
/// (the clients share the cores with the server).
pub fn msg_id_of(text: &str) -> Option<u64> {
    if !text.starts_with(r#"{"type":"msg""#) {
        return None;
    }
    let at = text.find(r#""msg_id":""#)? + 10;
    let end = text[at..].find('"')? + at;
    text[at..end].parse().ok()
}

/// The seq of a `msg` frame, which the server writes first.
pub fn seq_of(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(r#"{"type":"msg","seq":"#)?;
    rest[..rest.find(',')?].parse().ok()
}

/// Messages a reader takes before it confirms them with `received`.
pub const CONFIRM_EVERY: usize = 64;

/// One task per socket that reads until it has `n` `msg` frames (or 60 s
/// pass without one): the msg_ids with their arrival times. `count` is
/// raised by one per frame, for a sender that waits for deliveries. Each
/// confirms what it got every [`CONFIRM_EVERY`] messages, as a client
/// that stores them would.
pub fn spawn_readers(
    sockets: Vec<Ws>,
    n: usize,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Vec<(u64, std::time::Instant)>>> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    sockets
        .into_iter()
        .map(|ws| {
            let count = count.clone();
            tokio::spawn(async move {
                let (mut tx, mut rx) = ws.split();
                let mut got = Vec::with_capacity(n);
                while got.len() < n {
                    let next = tokio::time::timeout(std::time::Duration::from_secs(60), rx.next());
                    match next.await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            if let Some(id) = msg_id_of(&t) {
                                got.push((id, std::time::Instant::now()));
                                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                if got.len() % CONFIRM_EVERY == 0 || got.len() == n {
                                    if let Some(seq) = seq_of(&t) {
                                        let c = format!(r#"{{"type":"received","seq":{seq}}}"#);
                                        let _ = tx.send(Message::Text(c.into())).await;
                                    }
                                }
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                got
            })
        })
        .collect()
}

/// A `parley up` child process on a free port in a temp dir, for benches
/// that measure the server alone (its RSS from /proc, not the client's).
pub struct Child {
    pub url: String,
    pub pid: u32,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// Starts `parley` (a release build) with `env` (`PARLEY__...` settings)
/// and returns once it listens.
pub async fn spawn_up(parley: &std::path::Path, env: &[(&str, &str)]) -> Result<Child> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(parley)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("PARLEY__ARGON2_MEMORY_KIB", "1024")
        .env("PARLEY_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", parley.display()))?;
    let pid = child.id().context("pid")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let url = loop {
        let Some(line) = lines.next_line().await? else {
            bail!("parley exited before it listened");
        };
        if let Some(u) = line.strip_prefix("parley listening on ") {
            break u.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Child {
        url,
        pid,
        _child: child,
        _dir: dir,
    })
}

/// A process's resident memory, KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")
}

#[cfg(test)]
mod tests {
    #[test]
    fn seq_and_msg_id_read_from_a_rendered_frame() {
        let t =
            r#"{"type":"msg","seq":42,"msg_id":"386158439958577152","conversation_id":"d:1:2"}"#;
        assert_eq!(super::seq_of(t), Some(42));
        assert_eq!(super::msg_id_of(t), Some(386158439958577152));
        assert_eq!(super::seq_of(r#"{"type":"ack","seq":1,"#), None);
    }
}
