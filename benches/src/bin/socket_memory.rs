//! What sockets cost the server in memory, measured on a real `parley up`
//! child process (its RSS from /proc, so the clients' memory is not in it).
//!
//! - `idle`: opens `--sockets` WebSockets that do nothing after one round
//!   trip (an `error` frame for a bad frame, so each socket has read and
//!   written once), and reports the RSS growth per socket.
//!   Past 20,000 sockets, each further 20,000 come from the next loopback
//!   address (127.0.0.2, 127.0.0.3, ...), past one address's ephemeral
//!   ports; raise the open-files limit first (`ulimit -n 250000`).
//!   `--mqtt`: MQTT 3.1.1 sessions on the server's MQTT listener instead,
//!   each a device of its own (signed in by token) subscribed to
//!   `parley/me`, the SUBACK its round trip.
//! - `slow`: opens `--sockets` receivers that never read and `--senders`
//!   senders that send `--rate` messages a second to them for
//!   `--duration` seconds, sampling the server's RSS each second: the
//!   peak is the bound a non-reading client population costs; slow
//!   readers are closed (parley_limit_hits_total{limit="slow_reader"}).
//!   Receivers have 4 KiB receive buffers, so the server's side fills in
//!   seconds. `--read` is the control: the same with receivers that read,
//!   so the difference is what not reading costs (the log and the stores
//!   grow alike in both).
//!
//! The idle sockets share one user (a device per socket costs a password
//! hash each; the per-user socket cap is raised for the run), as socket
//! memory does not depend on whose socket it is; the slow readers are a
//! user each, so the rate is spread over them as real traffic is.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use futures::{SinkExt, StreamExt};
use parley_benches::{connect, connect_from, mqtt, rand_suffix, rss_kib, session, spawn_up};
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Idle,
    Slow,
}

#[derive(Parser)]
#[command(about = "Server memory per idle socket, and under clients that never read")]
struct Args {
    #[arg(value_enum)]
    mode: Mode,
    /// The parley binary to start (a release build).
    #[arg(long, default_value = "target/release/parley")]
    parley: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    #[arg(long, default_value_t = 20)]
    senders: usize,
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Bytes of text per message (slow mode).
    #[arg(long, default_value_t = 200)]
    text: usize,
    /// Slow mode's control run: the receivers read everything.
    #[arg(long)]
    read: bool,
    /// Idle mode over MQTT instead of WebSocket.
    #[arg(long)]
    mqtt: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    parley::raise_open_files_limit();
    let mqtt_addr = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    );
    let mut env = vec![
        ("PARLEY__LIMITS__SOCKETS_PER_USER", "1000000"),
        ("PARLEY__LIMITS__SENDS_PER_SEC", "1000000"),
        ("PARLEY__LIMITS__SENDS_BURST", "1000000"),
        // Many sockets from one address, by design of the measurement.
        ("PARLEY__LIMITS__CONNECTIONS_PER_IP", "0"),
    ];
    if args.mqtt {
        env.push(("PARLEY__MQTT_LISTEN", mqtt_addr.as_str()));
        env.push(("PARLEY__LIMITS__SIGN_INS_PER_MIN_PER_ACCOUNT", "1000000"));
    }
    let server = spawn_up(&args.parley, &env).await?;
    let (url, pid) = (server.url.clone(), server.pid);
    let http = reqwest::Client::new();
    let run = rand_suffix();
    match args.mode {
        Mode::Idle if args.mqtt => idle_mqtt(&args, &http, &url, &mqtt_addr, pid, run).await,
        Mode::Idle => idle(&args, &http, &url, pid, run).await,
        Mode::Slow => slow(&args, &http, &url, pid, run).await,
    }
}

/// Sockets per client address: well inside the 28K ephemeral ports.
const PER_ADDRESS: usize = 20_000;

async fn idle(args: &Args, http: &reqwest::Client, url: &str, pid: u32, run: u64) -> Result<()> {
    let (_, token) = session(http, url, &format!("idle{run}")).await?;
    // One socket first, so what every socket shares is in the baseline.
    let mut warm = connect(url, &token).await?;
    round_trip(&mut warm).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid)?;
    let t = Instant::now();
    let mut sockets = Vec::with_capacity(args.sockets);
    for i in 0..args.sockets {
        let from = std::net::Ipv4Addr::new(127, 0, 0, 1 + (i / PER_ADDRESS) as u8);
        // A server out of file descriptors leaves connects unanswered.
        let mut ws = tokio::time::timeout(Duration::from_secs(10), connect_from(url, &token, from))
            .await
            .with_context(|| format!("socket {i}: no answer in 10 s (open-files limits?)"))?
            .with_context(|| format!("socket {i} from {from}"))?;
        round_trip(&mut ws).await?;
        sockets.push(ws);
        if (i + 1) % 10_000 == 0 {
            eprintln!("{} sockets open ({:.1}s)", i + 1, t.elapsed().as_secs_f64());
        }
    }
    // Let allocator caches settle, as ejabberd's run waits 5 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss_kib(pid)?;
    let per = (after.saturating_sub(before)) as f64 / args.sockets as f64;
    println!(
        "idle: {} sockets; server RSS {before} KiB before, {after} KiB after: {per:.1} KiB per socket",
        args.sockets
    );
    drop(sockets);
    Ok(())
}

/// Idle MQTT sessions, a device each (a sign-in each, before measuring).
async fn idle_mqtt(
    args: &Args,
    http: &reqwest::Client,
    url: &str,
    addr: &str,
    pid: u32,
    run: u64,
) -> Result<()> {
    let name = format!("idlemqtt{run}");
    let mut tokens = Vec::with_capacity(args.sockets + 1);
    for _ in 0..=args.sockets {
        tokens.push(session(http, url, &name).await?.1);
    }
    let open = |token: String| async move {
        let (mut w, mut r) = mqtt::connect(addr, Some(("token", &token))).await?;
        mqtt::subscribe(&mut w, &mut r, "parley/me").await?;
        Ok::<_, anyhow::Error>((w, r))
    };
    // One session first, so what every session shares is in the baseline.
    let warm = open(tokens.pop().context("a token")?).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid)?;
    let mut sessions = Vec::with_capacity(args.sockets);
    for token in tokens {
        sessions.push(open(token).await?);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss_kib(pid)?;
    let per = (after.saturating_sub(before)) as f64 / args.sockets as f64;
    println!(
        "idle MQTT: {} sessions; server RSS {before} KiB before, {after} KiB after: {per:.1} KiB per session",
        args.sockets
    );
    drop((warm, sessions));
    Ok(())
}

/// A client socket with a 4 KiB receive buffer, so a client that does not
/// read stops the server's writes after kilobytes, not the megabytes a
/// loopback socket would otherwise take in.
async fn connect_small(url: &str, token: &str) -> Result<parley_benches::Ws> {
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(addr).await?;
    let ws = format!("ws://{addr}/v1/ws?token={token}");
    let (ws, _) =
        tokio_tungstenite::client_async(ws, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .context("websocket connect")?;
    Ok(ws)
}

/// Sends a bad frame and waits for its `error`: the socket has read and
/// written once on both sides.
async fn round_trip(ws: &mut parley_benches::Ws) -> Result<()> {
    ws.send(Message::Text(r#"{"type":"nope"}"#.into())).await?;
    loop {
        match ws.next().await.context("closed")?? {
            Message::Text(t) if t.contains(r#""type":"error""#) => return Ok(()),
            _ => {}
        }
    }
}

async fn slow(args: &Args, http: &reqwest::Client, url: &str, pid: u32, run: u64) -> Result<()> {
    // Receivers: one user each, connected, synced, and never read again.
    let base = rss_kib(pid)?;
    let mut receivers = Vec::with_capacity(args.sockets);
    let mut ids = Vec::with_capacity(args.sockets);
    for i in 0..args.sockets {
        let (id, token) = session(http, url, &format!("slow{run}x{i}")).await?;
        let mut ws = connect_small(url, &token).await?;
        ws.send(Message::Text(r#"{"type":"sync"}"#.into())).await?;
        if args.read {
            let (tx, mut rx) = ws.split();
            tokio::spawn(async move {
                let _keep = tx;
                while let Some(Ok(_)) = rx.next().await {}
            });
        } else {
            receivers.push(ws);
        }
        ids.push(id);
    }
    let ids = Arc::new(ids);
    let connected = rss_kib(pid)?;
    let sent = Arc::new(AtomicU64::new(0));
    let per_sender = Duration::from_secs_f64(args.senders as f64 / args.rate as f64);
    let text = "x".repeat(args.text);
    let args_senders = args.senders;
    let mut tasks = Vec::new();
    for s in 0..args.senders {
        let (_, token) = session(http, url, &format!("sender{run}x{s}")).await?;
        let ws = connect(url, &token).await?;
        let (mut tx, mut rx) = ws.split();
        tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
        let (ids, text, sent) = (ids.clone(), text.clone(), sent.clone());
        let until = Instant::now() + Duration::from_secs(args.duration);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(per_sender);
            let mut n = 0u64;
            while Instant::now() < until {
                tick.tick().await;
                n += 1;
                // Round robin over the receivers: each gets rate/sockets a second.
                let to = &ids[(n as usize * args_senders + s) % ids.len()];
                let f = serde_json::json!({"type": "send", "client_msg_id": format!("{s}-{n}"),
                    "to": {"user": to}, "body": {"text": text}});
                if tx.send(Message::Text(f.to_string().into())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut peak = connected;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(args.duration + 15) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_kib(pid)?;
        peak = peak.max(now);
        eprintln!(
            "{:>3}s sent {:>7} rss {:>7} KiB",
            t.elapsed().as_secs(),
            sent.load(Ordering::Relaxed),
            now
        );
    }
    for t in tasks {
        let _ = t.await;
    }
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let closed = metrics
        .lines()
        .find(|l| l.starts_with(r#"parley_limit_hits_total{limit="slow_reader"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("0")
        .to_owned();
    println!(
        "slow{}: {} {} sockets, {} msg/s for {}s ({} sent); server RSS {base} KiB at start, {connected} KiB connected, peak {peak} KiB ({:.1} KiB per socket over start); slow readers closed: {closed}",
        if args.read { " (control)" } else { "" },
        args.sockets,
        if args.read { "reading" } else { "non-reading" },
        args.rate,
        args.duration,
        sent.load(Ordering::Relaxed),
        (peak - base) as f64 / args.sockets as f64,
    );
    drop(receivers);
    Ok(())
}
