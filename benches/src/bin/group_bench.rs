//! One group, every member online: how fast do messages fan out?
//!
//! Registers `--members` users and a sender, connects every member's
//! WebSocket, creates one group of them all, then sends `--messages`
//! messages to it (at most `--window` unacknowledged; with `--paced`, each
//! only once every member got the one before, which measures latency
//! without load). Each member records
//! when each message reached it. Reports deliveries per second (member
//! `msg` frames received, over the time from the first send to the last
//! delivery) and, per message, the latency from its send to the *last*
//! member that got it (p50, p99, max).
//!
//! Without `--url` it runs `parley up` in this process on the embedded
//! engines (a temporary data dir), so server and clients share the cores.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parley_benches::{connect, rand_suffix, session, spawn_readers};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(about = "Parley group fan-out benchmark")]
struct Args {
    /// A running server; without it, `parley up` runs in this process
    #[arg(long)]
    url: Option<String>,
    /// Members besides the sender, all online
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Messages sent to the group
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Unacknowledged sends at once
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Concurrent registrations/logins/connects during setup
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
    /// Send each message only once every member got the previous one
    #[arg(long)]
    paced: bool,
    /// The in-process server's read fan-out threshold (its default if unset)
    #[arg(long)]
    read_fanout_above: Option<usize>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    parley::raise_open_files_limit();
    let (url, server) = match &args.url {
        Some(u) => (u.clone(), None),
        None => {
            let dir = tempfile::tempdir()?;
            let cfg = parley::Config {
                data_dir: dir.path().to_path_buf(),
                argon2_memory_kib: 1024,
                limits: parley_benches::bench_limits(),
                ..parley::Config::default()
            };
            let cfg = parley::Config {
                group_read_fanout_above: args
                    .read_fanout_above
                    .unwrap_or(cfg.group_read_fanout_above),
                ..cfg
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                parley::up(&cfg, listener, async move {
                    let _ = stopped.await;
                })
                .await
            });
            let http = reqwest::Client::new();
            while http
                .get(format!("{url}/readyz"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .ok()
                != Some(true)
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (url, Some((stop, task, dir)))
        }
    };
    let run = format!("{:x}", rand_suffix());
    let http = reqwest::Client::new();

    let t = Instant::now();
    let (sender_id, sender_token) = session(&http, &url, &format!("gs{run}")).await?;
    let gate = Arc::new(Semaphore::new(args.setup_concurrency));
    let setups = (0..args.members).map(|i| {
        let (http, url, gate, name) = (
            http.clone(),
            url.clone(),
            gate.clone(),
            format!("gm{run}x{i}"),
        );
        async move {
            let _permit = gate.acquire().await?;
            let (id, token) = session(&http, &url, &name).await?;
            let ws = connect(&url, &token).await?;
            anyhow::Ok((id, ws))
        }
    });
    let members: Vec<_> = futures::future::try_join_all(setups).await?;
    let ids: Vec<&str> = members.iter().map(|(id, _)| id.as_str()).collect();
    let created: Value = http
        .post(format!("{url}/v1/groups"))
        .bearer_auth(&sender_token)
        .json(&json!({"name": "bench", "members": ids}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let group = created["group_id"].as_str().context("group_id")?.to_owned();
    eprintln!(
        "setup: {} members online in group {group} in {:.1}s (sender {sender_id})",
        args.members,
        t.elapsed().as_secs_f64()
    );

    // Each member reads until it has every message: (msg_id, arrival).
    let n = args.messages;
    let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sockets = members.into_iter().map(|(_, ws)| ws).collect();
    let readers = spawn_readers(sockets, n, delivered.clone());

    let mut ws = connect(&url, &sender_token).await?;
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut id_of: HashMap<u64, Instant> = HashMap::new();
    let start = Instant::now();
    let (mut next, mut acked) = (0, 0);
    while acked < n {
        while next < n && next - acked < args.window {
            // Paced: the previous message has reached everyone.
            while args.paced
                && delivered.load(std::sync::atomic::Ordering::Relaxed) < next * args.members
            {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            let cid = format!("b{next}");
            let frame = json!({"type": "send", "client_msg_id": cid, "to": {"group": group},
                               "body": {"text": format!("fan-out {next}")}});
            sent_at.insert(cid, Instant::now());
            ws.send(Message::Text(frame.to_string().into())).await?;
            next += 1;
        }
        let Some(frame) = ws.next().await else {
            bail!("sender socket closed")
        };
        let Message::Text(t) = frame? else { continue };
        let v: Value = serde_json::from_str(&t)?;
        match v["type"].as_str() {
            Some("ack") => {
                let cid = v["client_msg_id"].as_str().context("cid")?;
                let id: u64 = v["msg_id"].as_str().context("msg_id")?.parse()?;
                id_of.insert(id, sent_at[cid]);
                acked += 1;
            }
            Some("error") => bail!("send refused: {v}"),
            _ => {}
        }
    }

    let mut last: HashMap<u64, Instant> = HashMap::new();
    let mut deliveries = 0u64;
    let mut end = start;
    for r in readers {
        for (id, at) in r.await? {
            deliveries += 1;
            end = end.max(at);
            let e = last.entry(id).or_insert(at);
            *e = (*e).max(at);
        }
    }
    let mut to_last = Histogram::<u64>::new(3)?;
    for (id, at) in &last {
        if let Some(sent) = id_of.get(id) {
            to_last.record(at.duration_since(*sent).as_micros() as u64)?;
        }
    }
    let secs = end.duration_since(start).as_secs_f64();
    let expected = (args.members * n) as u64;
    println!(
        "{} members, {} messages: {deliveries}/{expected} deliveries in {secs:.2}s = {:.0} deliveries/s",
        args.members,
        n,
        deliveries as f64 / secs
    );
    let ms = |q: f64| to_last.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "send -> last member: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(0.5),
        ms(0.99),
        to_last.max() as f64 / 1000.0
    );
    if let Some((stop, task, _dir)) = server {
        let _ = stop.send(());
        task.await??;
    }
    if deliveries < expected {
        bail!("{} deliveries missing", expected - deliveries);
    }
    Ok(())
}
