//! History store bench: insert throughput (rows/s through
//! `History::write`, the history writer's path), scrollback latency
//! (pages of 50 at random points of one big conversation) and search
//! latency (`History::search` in that conversation, for a word in every
//! message, one in 1 of 1,000, and one in none), on ClickHouse (a
//! private clickhouse-server, or `--url`) or the embedded history.
//!
//! `cargo run --release -p parley-benches --bin parley-history-bench -- --rows 10000000`

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use hdrhistogram::Histogram;
use parley_engines::clickhouse::ClickHouseHistory;
use parley_engines::contract::servers::ClickHouseServer;
use parley_engines::history::{History, HistoryBatch};
use parley_engines::RedbHistory;
use parley_schemas::event::MessageSent;
use parley_schemas::ids::{ConversationId, DeviceId, MessageId, UserId};
use parley_schemas::wire::{Body, Recipient};

#[derive(Parser)]
struct Args {
    /// Messages in all.
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Of which in the one conversation that is scrolled back.
    #[arg(long, default_value_t = 1_000_000)]
    big: u64,
    /// Other conversations the rest is spread over.
    #[arg(long, default_value_t = 100_000)]
    conversations: u64,
    /// Messages per `write` call (the writer's batch).
    #[arg(long, default_value_t = 10_000)]
    batch: u64,
    /// Concurrent writers (the writer runs one per partition).
    #[arg(long, default_value_t = 2)]
    writers: u64,
    /// Scrollback pages to time.
    #[arg(long, default_value_t = 2_000)]
    queries: u64,
    /// Searches to time of each kind (common, rare, absent word).
    #[arg(long, default_value_t = 20)]
    searches: u64,
    /// `clickhouse://...` of a running server; default: start a private one.
    #[arg(long)]
    url: Option<String>,
    /// Bench the embedded (redb) history instead, in this directory.
    #[arg(long)]
    embedded: Option<std::path::PathBuf>,
}

const T0: u64 = 1_780_000_000_000;

fn message(i: u64, args: &Args) -> MessageSent {
    // Every `ratio`-th message is in the big conversation d:1:2.
    let ratio = (args.rows / args.big.max(1)).max(1);
    let (from, to) = if i % ratio == 0 {
        (1, 2)
    } else {
        let c = i % args.conversations;
        (1_000 + 2 * c, 1_001 + 2 * c)
    };
    let ts = T0 + i / 4;
    MessageSent {
        msg_id: MessageId::from_parts(ts, (i % 1024) as u16, (i / 1024 % 4096) as u16),
        conversation: ConversationId::direct(UserId(from), UserId(to)),
        from: UserId(from),
        from_device: DeviceId(1),
        to: Recipient::User(UserId(to)),
        client_msg_id: format!("b-{i}"),
        // `tag0000`..`tag9999`: each in 1 of 10,000 messages, for search.
        body: Body::Text(format!(
            "benchmark message number {i} tag{:04}, about a chat line",
            i % 10_000
        )),
        ts,
        reply_to: None,
        forwarded: false,
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    let _server;
    let history: Arc<dyn History> = if let Some(dir) = &args.embedded {
        Arc::new(RedbHistory::open(dir.join("history.redb"))?)
    } else {
        let url = match &args.url {
            Some(u) => u.clone(),
            None => {
                let s = ClickHouseServer::start();
                let url = s.url.clone();
                _server = s;
                url
            }
        };
        let ch = ClickHouseHistory::connect(&url)?;
        ch.migrate().await?;
        Arc::new(ch)
    };

    // Insert: `writers` tasks, each writing every `writers`-th batch.
    let started = Instant::now();
    let batches = args.rows.div_ceil(args.batch);
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let (history, args) = (history.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let mut b = w;
            while b < batches {
                let range = b * args.batch..((b + 1) * args.batch).min(args.rows);
                let batch = HistoryBatch {
                    messages: range.map(|i| message(i, &args)).collect(),
                    ..Default::default()
                };
                history.write(&batch).await?;
                b += args.writers;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "insert: {} messages in {secs:.1} s = {:.0} rows/s ({} per write, {} writers)",
        args.rows,
        args.rows as f64 / secs,
        args.batch,
        args.writers
    );

    // Scrollback: pages of 50 below random points of the big conversation.
    let big = ConversationId::direct(UserId(1), UserId(2));
    let newest = history.page(big, None, 1).await?;
    let oldest_ts = T0;
    let newest_ts = newest.first().map_or(T0, |m| m.ts);
    let mut hist = Histogram::<u64>::new(3)?;
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut pages = 0;
    for q in 0..args.queries {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let before = if q % 10 == 0 {
            None // the first page, as a client opening the chat
        } else {
            let ts = oldest_ts + rng % (newest_ts - oldest_ts + 1);
            Some(MessageId::lower_bound_at(ts))
        };
        let t = Instant::now();
        let page = history.page(big, before, 50).await?;
        hist.record(t.elapsed().as_micros() as u64)?;
        pages += usize::from(page.len() == 50);
    }
    println!(
        "scrollback over {} rows ({} in the conversation): {} pages of 50 ({} full): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.rows,
        args.big,
        args.queries,
        pages,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
    // Search: a page of 20 newest first in the big conversation.
    for (kind, word) in [("common", "benchmark"), ("rare", ""), ("absent", "xyzzy")] {
        let mut hist = Histogram::<u64>::new(3)?;
        let mut hits = 0;
        for q in 0..args.searches {
            let word = match word {
                // The big conversation holds every 10th message: its tags
                // end in 0, each in 1 of its 1,000 messages.
                "" => format!("tag{:04}", (q * 7919) % 1_000 * 10),
                w => w.to_owned(),
            };
            let t = Instant::now();
            let found = history.search(&[big], &[word], None, 20).await?;
            hist.record(t.elapsed().as_micros() as u64)?;
            hits += found.len();
        }
        println!(
            "search ({kind} word) over {} rows ({} in the conversation): {} searches, {:.1} hits each: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            args.rows,
            args.big,
            args.searches,
            hits as f64 / args.searches.max(1) as f64,
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            hist.max() as f64 / 1000.0
        );
    }
    let t = Instant::now();
    let list = history.conversations(UserId(1), 100).await?;
    println!(
        "conversation list of user 1 ({} conversations): {:.2} ms",
        list.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
