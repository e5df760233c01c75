//! Load generator for 1:1 chat over the client protocol.
//!
//! Opens `--pairs` pairs of WebSocket clients (a sender and a receiver
//! each), sends at a fixed total `--rate` (open loop: sends are scheduled
//! by the clock, not by acks) or flat out (`--rate 0`, with `--window`
//! unacknowledged sends per sender), and records send → deliver latency in
//! an HdrHistogram, counted from when each send was *due* (so a sender
//! that falls behind does not hide the wait: no coordinated omission).
//! After the run it drains (`--drain`) and counts acked messages that never
//! arrived (lost) and arrivals seen before (duplicates). Prints progress
//! every second and a summary (or JSON with `--json`, with a per-second
//! timeline: delivered, sent, acked, errors, p50 and p99 of that second).
//!
//! Only talks to the address given (loopback in every documented run).
//! The server should run with `PARLEY__ARGON2_MEMORY_KIB=1024` so that
//! registering thousands of users does not dominate the run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parley_benches::{connect, rand_suffix, session, CONFIRM_EVERY};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Clone)]
#[command(about = "Parley 1:1 load generator")]
struct Args {
    /// Server base URL; several, comma-separated, for a cluster's edges:
    /// pair i's sender uses edge i and its receiver edge i + 1 (mod n), so
    /// pairs span edges
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    url: Vec<String>,
    /// Sender/receiver pairs (2 × pairs sockets)
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Total messages per second; 0 = flat out
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Unacknowledged sends per sender when flat out
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Seconds of measurement
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds of warm-up before measuring
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Concurrent registrations/logins/connects during setup
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    /// A rate profile instead of --rate and --duration: comma-separated
    /// SECONDS@RATE segments, e.g. `30@5000,60@50000,60@5000` for a 10×
    /// spike; the warm-up runs at the first segment's rate
    #[arg(long, value_parser = parse_profile)]
    profile: Option<Profile>,
    /// After the run, seconds to wait for every acked message to arrive
    /// before counting the rest as lost
    #[arg(long, default_value_t = 30)]
    drain: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    errors: AtomicU64,
}

/// Total send rates over time: `(seconds, msg/s)` segments, in order.
#[derive(Clone, Debug, PartialEq)]
struct Profile(Vec<(f64, u64)>);

fn parse_profile(s: &str) -> Result<Profile, String> {
    let segments = s
        .split(',')
        .map(|seg| {
            let (secs, rate) = seg.split_once('@').ok_or("segments are SECONDS@RATE")?;
            let secs: f64 = secs
                .trim()
                .parse()
                .map_err(|_| format!("bad seconds in {seg}"))?;
            let rate: u64 = rate
                .trim()
                .parse()
                .map_err(|_| format!("bad rate in {seg}"))?;
            if secs <= 0.0 || rate == 0 {
                return Err(format!("{seg}: seconds and rate must be positive"));
            }
            Ok((secs, rate))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Profile(segments))
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let segments: Vec<String> = self.0.iter().map(|(s, r)| format!("{s}@{r}")).collect();
        f.write_str(&segments.join(","))
    }
}

impl Profile {
    fn seconds(&self) -> f64 {
        self.0.iter().map(|s| s.0).sum()
    }

    /// The total rate `t` seconds into the profile (before it: the first
    /// segment's; after it: the last's).
    fn rate_at(&self, t: f64) -> u64 {
        let mut end = 0.0;
        for &(secs, rate) in &self.0 {
            end += secs;
            if t < end {
                return rate;
            }
        }
        self.0.last().map_or(0, |s| s.1)
    }
}

/// Send → deliver latency in µs: over the measured run, and over the
/// current second (for the timeline).
struct Latency {
    run: Histogram<u64>,
    second: Histogram<u64>,
}

impl Latency {
    fn record(&mut self, us: u64) {
        let _ = self.run.record(us);
        let _ = self.second.record(us);
    }
}

/// One pair's sends: what the server acked and what the receiver got, by
/// the sender's message number, for the lost and duplicate counts.
#[derive(Default)]
struct Ledger {
    acked: HashSet<u64>,
    received: HashSet<u64>,
    duplicates: u64,
}

/// The message number `n` of a frame naming `"client_msg_id":"<pair>-<n>"`.
fn number_of(frame: &str) -> Option<u64> {
    let at = frame.find("\"client_msg_id\":\"")? + 17;
    let cid = frame[at..].split('"').next()?;
    cid.rsplit('-').next()?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    parley::raise_open_files_limit();
    let run = format!("{:x}", rand_suffix());
    let http = reqwest::Client::new();
    let epoch = Instant::now();
    let hist = Arc::new(Mutex::new(Latency {
        run: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        second: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    }));
    let counters = Arc::new(Counters::default());
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Setup: users, sessions and sockets, a bounded number at a time.
    eprintln!("setting up {} pairs ...", args.pairs);
    let t = Instant::now();
    let setup = Arc::new(Semaphore::new(args.setup_concurrency));
    let mut pairs = Vec::new();
    for i in 0..args.pairs {
        let n = args.url.len();
        let (surl, rurl) = (args.url[i % n].clone(), args.url[(i + 1) % n].clone());
        let (http, run, setup) = (http.clone(), run.clone(), setup.clone());
        pairs.push(tokio::spawn(async move {
            let _p = setup.acquire().await?;
            let (_, stoken) = session(&http, &surl, &format!("lg{run}s{i}")).await?;
            let (rid, rtoken) = session(&http, &rurl, &format!("lg{run}r{i}")).await?;
            let sender = connect(&surl, &stoken).await?;
            let receiver = connect(&rurl, &rtoken).await?;
            Ok::<_, anyhow::Error>((sender, receiver, rid))
        }));
    }
    let mut sockets = Vec::new();
    for p in pairs {
        sockets.push(p.await??);
    }
    eprintln!(
        "{} sockets open in {:.1}s",
        2 * args.pairs,
        t.elapsed().as_secs_f64()
    );

    // Open loop by a rate profile (one segment for --rate), or flat out.
    let profile = match &args.profile {
        Some(p) => Some(p.clone()),
        None => (args.rate > 0).then(|| Profile(vec![(args.duration as f64, args.rate)])),
    };
    let duration = profile
        .as_ref()
        .map_or(args.duration, |p| p.seconds().ceil() as u64);
    // When the measured run starts: the profile's time 0.
    let run_start = Instant::now() + Duration::from_secs(args.warmup);
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    let mut ledgers = Vec::new();
    for (i, (sender, receiver, rid)) in sockets.into_iter().enumerate() {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        ledgers.push(ledger.clone());
        let ledger_r = ledger.clone();
        // Receiver: every msg carries its send time; it confirms what it
        // got every CONFIRM_EVERY messages, as a client that stores them would.
        let (hist_r, counters_r, measuring_r) = (hist.clone(), counters.clone(), measuring.clone());
        let (mut rsink, mut rstream) = receiver.split();
        tasks.push(tokio::spawn(async move {
            let mut unconfirmed = 0;
            while let Some(Ok(m)) = rstream.next().await {
                let Message::Text(t) = m else { continue };
                let v: Value = match serde_json::from_str(&t) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                match v["type"].as_str() {
                    Some("msg") => {
                        unconfirmed += 1;
                        if unconfirmed == CONFIRM_EVERY {
                            unconfirmed = 0;
                            let seq = v["seq"].as_u64().unwrap_or(0);
                            let confirm = format!(r#"{{"type":"received","seq":{seq}}}"#);
                            let _ = rsink.send(Message::Text(confirm.into())).await;
                        }
                        // "lg <due µs> <n>": latency counts from when the
                        // send was due, not when it went out (no
                        // coordinated omission when the sender falls behind).
                        let mut words = v["body"]["text"].as_str().unwrap_or("").split(' ').skip(1);
                        let sent_us: u64 = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                        if let Some(n) = words.next().and_then(|s| s.parse::<u64>().ok()) {
                            let mut l = ledger_r.lock().unwrap();
                            if !l.received.insert(n) {
                                l.duplicates += 1;
                            }
                        }
                        if measuring_r.load(Ordering::Relaxed) {
                            let now_us = epoch.elapsed().as_micros() as u64;
                            hist_r
                                .lock()
                                .unwrap()
                                .record(now_us.saturating_sub(sent_us).max(1));
                            counters_r.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some("error") => {
                        counters_r.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
        // Sender: its own reader counts acks and frees the window.
        let (mut ssink, mut sstream) = sender.split();
        let window = Arc::new(Semaphore::new(args.window));
        let (counters2, window2) = (counters.clone(), window.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(m)) = sstream.next().await {
                let Message::Text(t) = m else { continue };
                if t.contains("\"type\":\"ack\"") {
                    counters2.acked.fetch_add(1, Ordering::Relaxed);
                    window2.add_permits(1);
                    if let Some(n) = number_of(&t) {
                        ledger.lock().unwrap().acked.insert(n);
                    }
                } else if t.contains("\"type\":\"error\"") {
                    counters2.errors.fetch_add(1, Ordering::Relaxed);
                    window2.add_permits(1);
                }
            }
        }));
        let (counters_s, stop, profile, pairs_n) =
            (counters.clone(), stop.clone(), profile.clone(), args.pairs);
        tasks.push(tokio::spawn(async move {
            let pairs = pairs_n as f64;
            // Senders start spread over their first interval.
            let mut next = profile.as_ref().map(|p| {
                let first = pairs / p.rate_at(-1.0) as f64;
                Instant::now() + Duration::from_secs_f64(first * (i as f64 / 1000.0 % 1.0))
            });
            let stopped = stop.notified();
            tokio::pin!(stopped);
            for n in 0u64.. {
                // When this send is due: on schedule (a late one goes at
                // once, keeping its own due time), or now when flat out.
                let due = match (&mut next, &profile) {
                    (Some(at), Some(p)) => {
                        let due = *at;
                        tokio::select! { _ = tokio::time::sleep_until(due.into()) => {}, _ = &mut stopped => break }
                        let t = due.saturating_duration_since(run_start).as_secs_f64()
                            - run_start.saturating_duration_since(due).as_secs_f64();
                        *at = due + Duration::from_secs_f64(pairs / p.rate_at(t) as f64);
                        due
                    }
                    _ => tokio::select! { p = window.acquire() => { p.unwrap().forget(); Instant::now() }, _ = &mut stopped => break },
                };
                let due_us = due.saturating_duration_since(epoch).as_micros() as u64;
                let frame = json!({"type": "send", "client_msg_id": format!("{i}-{n}"), "to": {"user": rid}, "body": {"text": format!("lg {due_us} {n}")}});
                if ssink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
                counters_s.sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Warm up, then measure with a progress line per second.
    tokio::time::sleep_until(run_start.into()).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let base_sent = counters.sent.load(Ordering::Relaxed);
    let mut last = 0;
    // One entry per second: what was delivered in it and its latency.
    let mut timeline = Vec::new();
    for s in 1..=duration {
        tokio::time::sleep_until((start + Duration::from_secs(s)).into()).await;
        let d = counters.delivered.load(Ordering::Relaxed);
        let (p50, p99, p99_run) = {
            let mut h = hist.lock().unwrap();
            let q = |h: &Histogram<u64>, q| h.value_at_quantile(q) as f64 / 1000.0;
            let out = (q(&h.second, 0.5), q(&h.second, 0.99), q(&h.run, 0.99));
            h.second.reset();
            out
        };
        let (sent, acked, errors) = (
            counters.sent.load(Ordering::Relaxed),
            counters.acked.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed),
        );
        eprintln!(
            "[{s:>3}s] delivered {:>8}/s  sent {sent:>9}  acked {acked:>9}  errors {errors}  p99 this second {p99:.1} ms, so far {p99_run:.1} ms",
            d - last,
        );
        timeline.push(
            json!({"second": s, "delivered": d - last, "sent": sent, "acked": acked,
            "errors": errors, "p50_ms": p50, "p99_ms": p99}),
        );
        last = d;
    }
    let elapsed = start.elapsed().as_secs_f64();
    measuring.store(false, Ordering::Relaxed);
    stop.notify_waiters();
    // Drain: every acked message should arrive; what has not by the end
    // of the drain is lost. (Sends still unanswered are neither.)
    let drain_start = Instant::now();
    let tally = || {
        ledgers.iter().fold((0u64, 0u64), |(lost, dup), l| {
            let l = l.lock().unwrap();
            (
                lost + l.acked.difference(&l.received).count() as u64,
                dup + l.duplicates,
            )
        })
    };
    while tally().0 > 0 && drain_start.elapsed() < Duration::from_secs(args.drain) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (lost, duplicates) = tally();
    let drained_in = drain_start.elapsed().as_secs_f64();
    let h = hist.lock().unwrap().run.clone();
    let delivered = counters.delivered.load(Ordering::Relaxed);
    let summary = json!({
        "pairs": args.pairs,
        "sockets": 2 * args.pairs,
        "target_rate": args.rate,
        "profile": args.profile.as_ref().map(|p| p.0.clone()),
        "seconds": elapsed,
        "sent_per_s": (counters.sent.load(Ordering::Relaxed) - base_sent) as f64 / elapsed,
        "delivered_per_s": delivered as f64 / elapsed,
        "latency_ms": {
            "p50": h.value_at_quantile(0.5) as f64 / 1000.0,
            "p99": h.value_at_quantile(0.99) as f64 / 1000.0,
            "p999": h.value_at_quantile(0.999) as f64 / 1000.0,
            "max": h.max() as f64 / 1000.0,
        },
        "errors": counters.errors.load(Ordering::Relaxed),
        "acked": counters.acked.load(Ordering::Relaxed),
        "lost": lost,
        "duplicates": duplicates,
        "drained_in_s": drained_in,
        "timeline": timeline,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "{} pairs, target {}: delivered {:.0} msg/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, errors {}, lost {} of {} acked, duplicates {}",
            args.pairs,
            match (&args.profile, args.rate) {
                (Some(p), _) => format!("profile {p}"),
                (None, 0) => "flat out".to_string(),
                (None, r) => format!("{r}/s"),
            },
            summary["delivered_per_s"].as_f64().unwrap(),
            summary["latency_ms"]["p50"].as_f64().unwrap(),
            summary["latency_ms"]["p99"].as_f64().unwrap(),
            summary["latency_ms"]["p999"].as_f64().unwrap(),
            summary["errors"],
            lost,
            summary["acked"],
            duplicates
        );
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::number_of;

    #[test]
    fn profiles_parse_and_give_the_rate_at_a_time() {
        let p = super::parse_profile("30@500, 60@5000,60@500").unwrap();
        assert_eq!(p.seconds(), 150.0);
        assert_eq!(
            (p.rate_at(-3.0), p.rate_at(29.9), p.rate_at(30.0)),
            (500, 500, 5000)
        );
        assert_eq!((p.rate_at(149.0), p.rate_at(200.0)), (500, 500));
        assert!(super::parse_profile("30@0").is_err());
        assert!(super::parse_profile("30").is_err());
    }

    #[test]
    fn message_numbers_come_from_the_client_msg_id() {
        let ack = r#"{"type":"ack","client_msg_id":"12-345","msg_id":"9","conversation_id":"d:1:2","ts":1}"#;
        assert_eq!(number_of(ack), Some(345));
        assert_eq!(number_of(r#"{"type":"ack"}"#), None);
    }
}
