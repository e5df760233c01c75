//! The transport alone: how many `msg` frames per second can this machine
//! push to N WebSocket clients, with the clients on the same cores, when
//! nothing but the sockets does any work?
//!
//! An axum server holds `--members` sockets, each written by its own task
//! from a queue, frames queued and flushed as Parley's socket writer does
//! them (when the queue is empty, or every 64 frames). One task puts
//! `--messages` pre-rendered ~200-byte `msg` frames into every queue. The
//! clients are `parley-group-bench`'s. The result bounds what any fan-out
//! design can deliver here: it is the group bench without the pipeline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::routing::get;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use parley_benches::{connect, spawn_readers};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(about = "WebSocket push ceiling of this machine")]
struct Args {
    #[arg(long, default_value_t = 1000)]
    members: usize,
    #[arg(long, default_value_t = 400)]
    messages: usize,
}

type Queues = Arc<Mutex<Vec<mpsc::Sender<Arc<str>>>>>;

async fn upgrade(ws: WebSocketUpgrade, State(queues): State<Queues>) -> axum::response::Response {
    ws.on_upgrade(move |socket| write(socket, queues))
}

async fn write(socket: WebSocket, queues: Queues) {
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(1024);
    queues.lock().expect("queues").push(tx);
    let (mut sink, _stream) = socket.split();
    let mut unflushed = 0;
    while let Some(frame) = rx.recv().await {
        if sink
            .feed(Message::Text(frame.as_ref().into()))
            .await
            .is_err()
        {
            return;
        }
        unflushed += 1;
        if rx.is_empty() || unflushed >= 64 {
            unflushed = 0;
            if sink.flush().await.is_err() {
                return;
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    parley::raise_open_files_limit();
    let queues: Queues = Arc::default();
    let app = axum::Router::new()
        .route("/v1/ws", get(upgrade))
        .with_state(queues.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut sockets = Vec::with_capacity(args.members);
    for _ in 0..args.members {
        sockets.push(connect(&url, "none").await?);
    }
    while queues.lock().expect("queues").len() < args.members {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let readers = spawn_readers(sockets, args.messages, Arc::default());
    let senders: Vec<_> = queues.lock().expect("queues").clone();

    let start = Instant::now();
    for i in 0..args.messages {
        // The size and shape of a group `msg` frame.
        let frame: Arc<str> = format!(
            r#"{{"type":"msg","seq":{},"msg_id":"{}","conversation_id":"g:383563706006503424","from":"1","to":{{"group":"383563706006503424"}},"body":{{"text":"fan-out {i}"}},"ts":1764000000000}}"#,
            i + 1,
            383_600_000_000_000_000u64 + i as u64
        )
        .into();
        for tx in &senders {
            tx.send(frame.clone()).await.context("a socket closed")?;
        }
    }
    let mut deliveries = 0u64;
    let mut end = start;
    for r in readers {
        for (_, at) in r.await? {
            deliveries += 1;
            end = end.max(at);
        }
    }
    let secs = end.duration_since(start).as_secs_f64();
    println!(
        "{} sockets, {} frames each: {deliveries} deliveries in {secs:.2}s = {:.0} deliveries/s",
        args.members,
        args.messages,
        deliveries as f64 / secs
    );
    Ok(())
}
