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
//! `--receipts MS` makes it the realistic mix: each receiver answers every
//! message with a `delivered` receipt at once and a `read` receipt MS
//! later, and the senders count the `status` frames that come back.
//!
//! `--mqtt HOST:PORT` drives the same load over Parley's MQTT edge
//! (users made over HTTP at `--url`), `--mqtt-broker HOST:PORT` over a
//! plain MQTT broker (the peer: it relays, stores nothing).
//!
//! Only talks to the address given (loopback in every documented run).
//! The server should run with `PARLEY__ARGON2_MEMORY_KIB=1024` so that
//! registering thousands of users does not dominate the run.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parley_benches::load::{parse_profile, tally, Ledger, Profile, Schedule, Shared};
use parley_benches::{connect, mqtt, rand_suffix, session, xmpp, Ws, CONFIRM_EVERY};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
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
    /// Drive an XMPP server at this address (HOST:PORT) instead of Parley,
    /// with the same load: pair i is user(2i+1) → user(2i+2), registered
    /// beforehand (`../shared/peers/ejabberd/register.sh`)
    #[arg(long)]
    xmpp: Option<String>,
    /// The XMPP domain, user name prefix and password
    #[arg(long, default_value = "localhost")]
    xmpp_domain: String,
    #[arg(long, default_value = "user")]
    xmpp_prefix: String,
    #[arg(long, default_value = "pw")]
    xmpp_password: String,
    /// Drive Parley's MQTT listener at this address (HOST:PORT) instead
    /// of its WebSockets; users are made over HTTP at --url
    #[arg(long)]
    mqtt: Option<String>,
    /// Drive a plain MQTT broker at this address: pair i publishes to
    /// `bench/i` at QoS 1, its receiver subscribes to it
    #[arg(long)]
    mqtt_broker: Option<String>,
    /// After the run, seconds to wait for every acked message to arrive
    /// before counting the rest as lost
    #[arg(long, default_value_t = 30)]
    drain: u64,
    /// The realistic mix: every received message gets a `delivered`
    /// receipt at once and a `read` receipt this many ms later (Parley only)
    #[arg(long)]
    receipts: Option<u64>,
}

/// The message number `n` of a frame naming `"client_msg_id":"<pair>-<n>"`.
fn number_of(frame: &str) -> Option<u64> {
    let at = frame.find("\"client_msg_id\":\"")? + 17;
    let cid = frame[at..].split('"').next()?;
    cid.rsplit('-').next()?.parse().ok()
}

/// Each pair's two connections, of one protocol or the other.
enum Pairs {
    /// Sender, receiver, and the receiver's user id.
    Parley(Vec<(Ws, Ws, String)>),
    Xmpp(Vec<(XmppConn, XmppConn)>),
    Mqtt(Vec<mqtt::Pair>),
}

type XmppConn = (xmpp::Reader, tokio::net::tcp::OwnedWriteHalf);

async fn parley_pairs(
    args: &Args,
    http: &reqwest::Client,
    run: &str,
    setup: &Arc<Semaphore>,
) -> Result<Vec<(Ws, Ws, String)>> {
    let mut pairs = Vec::new();
    for i in 0..args.pairs {
        let n = args.url.len();
        let (surl, rurl) = (args.url[i % n].clone(), args.url[(i + 1) % n].clone());
        let (http, run, setup) = (http.clone(), run.to_owned(), setup.clone());
        pairs.push(tokio::spawn(async move {
            let _p = setup.acquire().await?;
            let (_, stoken) = session(&http, &surl, &format!("lg{run}s{i}")).await?;
            let (rid, rtoken) = session(&http, &rurl, &format!("lg{run}r{i}")).await?;
            let sender = connect(&surl, &stoken).await?;
            let receiver = connect(&rurl, &rtoken).await?;
            Ok::<_, anyhow::Error>((sender, receiver, rid))
        }));
    }
    let mut out = Vec::new();
    for p in pairs {
        out.push(p.await??);
    }
    Ok(out)
}

async fn xmpp_pairs(
    args: &Args,
    addr: &str,
    setup: &Arc<Semaphore>,
) -> Result<Vec<(XmppConn, XmppConn)>> {
    let mut pairs = Vec::new();
    for i in 0..args.pairs {
        let setup = setup.clone();
        let (addr, domain) = (addr.to_owned(), args.xmpp_domain.clone());
        let (prefix, pw) = (args.xmpp_prefix.clone(), args.xmpp_password.clone());
        pairs.push(tokio::spawn(async move {
            let _p = setup.acquire().await?;
            let user = |k: usize| format!("{prefix}{}", 2 * i + k);
            let sender = xmpp::sign_in(&addr, &domain, &user(1), &pw).await?;
            let receiver = xmpp::sign_in(&addr, &domain, &user(2), &pw).await?;
            Ok::<_, anyhow::Error>((sender, receiver))
        }));
    }
    let mut out = Vec::new();
    for p in pairs {
        out.push(p.await??);
    }
    Ok(out)
}

async fn mqtt_pairs(
    args: &Args,
    http: &reqwest::Client,
    run: &str,
    setup: &Arc<Semaphore>,
) -> Result<Vec<mqtt::Pair>> {
    let mut pairs = Vec::new();
    for i in 0..args.pairs {
        let (http, run, setup) = (http.clone(), run.to_owned(), setup.clone());
        let url = args.url[0].clone();
        let (parley, broker) = (args.mqtt.clone(), args.mqtt_broker.clone());
        pairs.push(tokio::spawn(async move {
            let _p = setup.acquire().await?;
            if let Some(addr) = parley {
                let (_, stoken) = session(&http, &url, &format!("lg{run}s{i}")).await?;
                let (rid, rtoken) = session(&http, &url, &format!("lg{run}r{i}")).await?;
                let sender = mqtt::connect(&addr, Some(("token", &stoken))).await?;
                let mut receiver = mqtt::connect(&addr, Some(("token", &rtoken))).await?;
                mqtt::subscribe(&mut receiver.0, &mut receiver.1, "parley/me").await?;
                let topic = "parley/send".to_owned();
                return Ok::<_, anyhow::Error>(mqtt::Pair {
                    sender,
                    receiver,
                    topic,
                    to: Some(rid),
                });
            }
            let addr = broker.expect("an MQTT address");
            let topic = format!("bench/{run}/{i}");
            let sender = mqtt::connect(&addr, None).await?;
            let mut receiver = mqtt::connect(&addr, None).await?;
            mqtt::subscribe(&mut receiver.0, &mut receiver.1, &topic).await?;
            Ok(mqtt::Pair {
                sender,
                receiver,
                topic,
                to: None,
            })
        }));
    }
    let mut out = Vec::new();
    for p in pairs {
        out.push(p.await??);
    }
    Ok(out)
}

/// What every pair's tasks share: the counters and histograms, each
/// pair's ledger, the stop signal, and each sender's schedule.
struct Run<'a, S> {
    shared: &'a Arc<Shared>,
    ledgers: &'a [Arc<Mutex<Ledger>>],
    stop: &'a Arc<Notify>,
    schedule: S,
}

/// Parley: the receiver confirms what it got every CONFIRM_EVERY messages,
/// as a client that stores them would; the sender's reader counts acks
/// and frees the window.
fn run_parley(
    pairs: Vec<(Ws, Ws, String)>,
    args: &Args,
    run: &Run<impl Fn(usize) -> Schedule>,
) -> Vec<JoinHandle<()>> {
    let (shared, ledgers, stop, schedule) = (run.shared, run.ledgers, run.stop, &run.schedule);
    let mut tasks = Vec::new();
    for (i, (sender, receiver, rid)) in pairs.into_iter().enumerate() {
        let (shared_r, ledger_r) = (Arc::clone(shared), ledgers[i].clone());
        let (mut rsink, mut rstream) = receiver.split();
        let read_after = args.receipts.map(Duration::from_millis);
        tasks.push(tokio::spawn(async move {
            let mut unconfirmed = 0;
            // Read receipts still to send: (due, conversation, msg_id), in
            // arrival order (one delay for all, so the front is due first).
            let mut reads: std::collections::VecDeque<(Instant, String, String)> =
                Default::default();
            loop {
                let next_read = reads.front().map(|(due, _, _)| *due);
                let m = tokio::select! {
                    m = rstream.next() => m,
                    _ = tokio::time::sleep_until(next_read.unwrap_or_else(Instant::now).into()),
                        if next_read.is_some() => {
                        let (_, conv, id) = reads.pop_front().expect("a read is due");
                        if rsink.send(receipt(&conv, &id, "read")).await.is_err() {
                            break;
                        }
                        shared_r.counters.receipts.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                let Some(Ok(m)) = m else { break };
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
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
                        shared_r.arrived(&ledger_r, v["body"]["text"].as_str().unwrap_or(""));
                        if let (Some(after), Some(conv), Some(id)) = (
                            read_after,
                            v["conversation_id"].as_str(),
                            v["msg_id"].as_str(),
                        ) {
                            let _ = rsink.send(receipt(conv, id, "delivered")).await;
                            shared_r.counters.receipts.fetch_add(1, Ordering::Relaxed);
                            reads.push_back((
                                Instant::now() + after,
                                conv.to_owned(),
                                id.to_owned(),
                            ));
                        }
                    }
                    Some("error") => {
                        shared_r.counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
        let (mut ssink, mut sstream) = sender.split();
        let window = Arc::new(Semaphore::new(args.window));
        let (shared_a, ledger_a, window_a) =
            (Arc::clone(shared), ledgers[i].clone(), window.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(m)) = sstream.next().await {
                let Message::Text(t) = m else { continue };
                if t.contains("\"type\":\"ack\"") {
                    window_a.add_permits(1);
                    if let Some(n) = number_of(&t) {
                        shared_a.acked(&ledger_a, n);
                    }
                } else if t.contains("\"type\":\"status\"") {
                    let c = &shared_a.counters;
                    let kind = if t.contains("\"status\":\"read\"") {
                        &c.status_read
                    } else {
                        &c.status_delivered
                    };
                    kind.fetch_add(1, Ordering::Relaxed);
                } else if t.contains("\"type\":\"error\"") {
                    shared_a.counters.errors.fetch_add(1, Ordering::Relaxed);
                    window_a.add_permits(1);
                }
            }
        }));
        let (shared_s, stop) = (Arc::clone(shared), Arc::clone(stop));
        let mut schedule = schedule(i);
        tasks.push(tokio::spawn(async move {
            let stopped = stop.notified();
            tokio::pin!(stopped);
            for n in 0u64.. {
                let due = tokio::select! { d = schedule.next(&window) => d, _ = &mut stopped => break };
                let text = shared_s.body(due, n);
                let frame = json!({"type": "send", "client_msg_id": format!("{i}-{n}"), "to": {"user": rid}, "body": {"text": text}});
                if ssink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
                shared_s.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tasks
}

/// A `receipt` frame.
fn receipt(conversation: &str, msg_id: &str, status: &str) -> Message {
    let frame = json!({"type": "receipt", "conversation_id": conversation, "msg_id": msg_id, "status": status});
    Message::Text(frame.to_string().into())
}

/// XMPP: no per-message ack without stream management, so a message
/// counts as acked once written (as the ejabberd harness counts lost:
/// sent minus received); flat out, the window is refilled at once.
fn run_xmpp(
    pairs: Vec<(XmppConn, XmppConn)>,
    args: &Args,
    run: &Run<impl Fn(usize) -> Schedule>,
) -> Vec<JoinHandle<()>> {
    let (shared, ledgers, stop, schedule) = (run.shared, run.ledgers, run.stop, &run.schedule);
    let mut tasks = Vec::new();
    for (i, ((mut sreader, mut swriter), (mut rreader, _rwriter))) in pairs.into_iter().enumerate()
    {
        let (shared_r, ledger_r) = (Arc::clone(shared), ledgers[i].clone());
        tasks.push(tokio::spawn(async move {
            // Kept open with the reader: dropping it would end the stream.
            let _rwriter = _rwriter;
            while let Ok(Some(body)) = rreader.next_body().await {
                shared_r.arrived(&ledger_r, &body);
            }
        }));
        // Whatever comes to the sender is read and dropped.
        tasks.push(tokio::spawn(async move {
            while let Ok(Some(_)) = sreader.next_body().await {}
        }));
        let (shared_s, ledger_s, stop) = (Arc::clone(shared), ledgers[i].clone(), Arc::clone(stop));
        let to = format!("{}{}", args.xmpp_prefix, 2 * i + 2);
        let domain = args.xmpp_domain.clone();
        let window = Semaphore::new(args.window);
        let mut schedule = schedule(i);
        tasks.push(tokio::spawn(async move {
            let stopped = stop.notified();
            tokio::pin!(stopped);
            for n in 0u64.. {
                let due =
                    tokio::select! { d = schedule.next(&window) => d, _ = &mut stopped => break };
                let stanza =
                    xmpp::message(&to, &domain, &format!("{i}-{n}"), &shared_s.body(due, n));
                if swriter.write_all(stanza.as_bytes()).await.is_err() {
                    break;
                }
                shared_s.counters.sent.fetch_add(1, Ordering::Relaxed);
                shared_s.acked(&ledger_s, n);
                window.add_permits(1);
            }
        }));
    }
    tasks
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    parley::raise_open_files_limit();
    let run = format!("{:x}", rand_suffix());
    let http = reqwest::Client::new();
    let shared = Arc::new(Shared::new());

    // Setup: users, sessions and sockets, a bounded number at a time.
    eprintln!("setting up {} pairs ...", args.pairs);
    let t = Instant::now();
    let setup = Arc::new(Semaphore::new(args.setup_concurrency));
    let pairs = match (
        &args.xmpp,
        args.mqtt.is_some() || args.mqtt_broker.is_some(),
    ) {
        (Some(addr), _) => Pairs::Xmpp(xmpp_pairs(&args, addr, &setup).await?),
        (None, true) => Pairs::Mqtt(mqtt_pairs(&args, &http, &run, &setup).await?),
        (None, false) => Pairs::Parley(parley_pairs(&args, &http, &run, &setup).await?),
    };
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
    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..args.pairs).map(|_| Arc::default()).collect();
    let schedule = |i| Schedule::new(profile.clone(), args.pairs, i, run_start);
    let run = Run {
        shared: &shared,
        ledgers: &ledgers,
        stop: &stop,
        schedule,
    };
    let tasks = match pairs {
        Pairs::Parley(p) => run_parley(p, &args, &run),
        Pairs::Xmpp(p) => run_xmpp(p, &args, &run),
        Pairs::Mqtt(p) => mqtt::run(p, args.window, &shared, &ledgers, &stop, &run.schedule),
    };
    let counters = &shared.counters;
    let hist = &shared.hist;
    let measuring = &shared.measuring;

    // Warm up, then measure with a progress line per second.
    tokio::time::sleep_until(run_start.into()).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let base_sent = counters.sent.load(Ordering::Relaxed);
    let receipts = |c: &parley_benches::load::Counters| {
        [&c.receipts, &c.status_delivered, &c.status_read].map(|n| n.load(Ordering::Relaxed))
    };
    let base_receipts = receipts(counters);
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
    let end_receipts = receipts(counters);
    let rate_of = |k: usize| (end_receipts[k] - base_receipts[k]) as f64 / elapsed;
    stop.notify_waiters();
    // Drain: every acked message should arrive; what has not by the end
    // of the drain is lost. (Sends still unanswered are neither.)
    let drain_start = Instant::now();
    // First every send is answered (a send acked just after a check that
    // found nothing missing would be counted lost before its delivery had
    // time to arrive), then every acked message arrives.
    let answered = || {
        let c = &shared.counters;
        c.acked.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed)
            >= c.sent.load(Ordering::Relaxed)
    };
    while (!answered() || tally(&ledgers).0 > 0)
        && drain_start.elapsed() < Duration::from_secs(args.drain)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (lost, duplicates) = tally(&ledgers);
    // Which ones, so a loss can be traced on the server; and arrivals the
    // sender never saw acked (the mirror of a loss).
    let sorted = |a: &HashSet<u64>, b: &HashSet<u64>| {
        let mut v: Vec<u64> = a.difference(b).copied().collect();
        v.sort_unstable();
        v
    };
    for (pair, l) in ledgers.iter().enumerate() {
        let l = l.lock().unwrap();
        let (missing, unacked) = (sorted(&l.acked, &l.received), sorted(&l.received, &l.acked));
        if !missing.is_empty() || !unacked.is_empty() {
            eprintln!(
                "pair {pair} (client_msg_id {pair}-N): lost {missing:?}, received but never acked {unacked:?}"
            );
        }
    }
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
        "receipts_per_s": rate_of(0),
        "status_delivered_per_s": rate_of(1),
        "status_read_per_s": rate_of(2),
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
        if args.receipts.is_some() {
            println!(
                "receipts sent {:.0}/s, status frames back: delivered {:.0}/s, read {:.0}/s",
                rate_of(0),
                rate_of(1),
                rate_of(2)
            );
        }
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
    fn message_numbers_come_from_the_client_msg_id() {
        let ack = r#"{"type":"ack","client_msg_id":"12-345","msg_id":"9","conversation_id":"d:1:2","ts":1}"#;
        assert_eq!(number_of(ack), Some(345));
        assert_eq!(number_of(r#"{"type":"ack"}"#), None);
    }
}
