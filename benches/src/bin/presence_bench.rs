//! The cost of one presence change for a user with many watchers.
//!
//! Gives one user `--watchers` watchers (users who have them as a
//! contact), then feeds the presence job `--changes` heartbeats that flip
//! the user online and offline, one batch each, and times each batch: the
//! privacy and watcher reads, and the notices appended to the inbox
//! partitions (fsynced, as in `parley up`). Embedded engines in a
//! temporary directory. Prints p50/p99/max per change and the notices per
//! second that gives.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use parley_engines::job::Processor;
use parley_engines::state::JobStore;
use parley_engines::{
    Applied, Log, Record, RedbState, SegmentLog, SegmentLogOptions, StateOp, TopicSpec,
};
use parley_processors::presence::PresenceJob;
use parley_schemas::event::{Event, Heartbeat};
use parley_schemas::ids::{now_ms, DeviceId, UserId};
use parley_schemas::wire::Audience;
use parley_schemas::{codec, topics};

#[derive(Parser)]
#[command(about = "Presence fan-out cost per change")]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    watchers: u64,
    #[arg(long, default_value_t = 200)]
    changes: u64,
    /// Inbox partitions the notices spread over
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// `everyone` or `contacts` (the user has every watcher as a contact)
    #[arg(long, default_value = "everyone")]
    privacy: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let log = Arc::new(SegmentLog::open(
        dir.path().join("log"),
        SegmentLogOptions::default(),
    )?);
    for t in [topics::INBOX, topics::PRESENCE] {
        log.ensure_topic(&TopicSpec::new(t, args.partitions))
            .await?;
    }
    let state = Arc::new(RedbState::open(dir.path().join("state.redb"))?);
    let user = UserId(1);
    let audience = match args.privacy.as_str() {
        "contacts" => Audience::Contacts,
        _ => Audience::Everyone,
    };
    let mut ops = vec![StateOp::SetPrivacy {
        user,
        presence: audience,
    }];
    for w in 2..args.watchers + 2 {
        let w = UserId(w);
        ops.push(StateOp::SetContact {
            user: w,
            contact: user,
            added: true,
        });
        ops.push(StateOp::SetContact {
            user,
            contact: w,
            added: true,
        });
    }
    state.write(ops).await?;

    let mut job = PresenceJob::new(log.clone(), state.clone(), args.partitions);
    let mut per_change = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    for k in 0..args.changes {
        let hb = Event::Heartbeat(Heartbeat {
            user,
            device: DeviceId(1),
            active: true,
            closing: k % 2 == 1,
            ts: now_ms(),
        });
        let record = Record {
            offset: k,
            timestamp: now_ms(),
            payload: Bytes::from(codec::encode(&hb)),
        };
        let t = Instant::now();
        job.process(0, &[record]).await?;
        job.committed(Applied::Written).await;
        per_change.record(t.elapsed().as_micros() as u64)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let mut notices = 0;
    for p in 0..args.partitions {
        let b = log.bounds(topics::INBOX, p).await?;
        notices += b.end - b.start;
    }
    let ms = |q: f64| per_change.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{} watchers ({}), {} changes: per change p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.0} watcher notices/s; {notices} notice records",
        args.watchers,
        args.privacy,
        args.changes,
        ms(0.5),
        ms(0.99),
        per_change.max() as f64 / 1000.0,
        (args.watchers * args.changes) as f64 / secs,
    );
    Ok(())
}
