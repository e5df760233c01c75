//! The delivery guarantee on a network that breaks: connections reset
//! mid-stream, reconnects racing traffic. Only `received` (or `sync
//! since`) moves a device's cursor; nothing pushed live overtakes an
//! older item the device has not been sent.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_written_to_a_socket_that_dies_come_again_after_a_plain_sync() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let (bob_token, _) = login(&s.url, "bob", None).await;
    let mut phone = Client::connect(&s.url, &bob_token).await;
    phone.send(json!({"type": "sync"})).await;

    let mut sent = Vec::new();
    for i in 0..50 {
        sent.push(a.say(&bob.id, &format!("m-{i}"), "hi").await["msg_id"].clone());
    }
    // The phone's socket got all 50 (so the server wrote them), then the
    // connection dies before the app handled or confirmed any.
    for _ in 0..50 {
        phone.expect("msg").await;
    }
    phone.reset();

    let mut phone = Client::connect(&s.url, &bob_token).await;
    phone.send(json!({"type": "sync"})).await;
    let mut got = Vec::new();
    for _ in 0..50 {
        got.push(phone.expect("msg").await["msg_id"].clone());
    }
    assert_eq!(got, sent, "all 50 again, in order");
    // Confirmed now: the next connection's sync has nothing to send.
    let last = 50;
    phone.send(json!({"type": "received", "seq": last})).await;
    phone.close().await;
    let mut phone = Client::connect(&s.url, &bob_token).await;
    phone.send(json!({"type": "sync"})).await;
    assert!(phone.quiet("msg", Duration::from_millis(300)).await);

    // The sender's tick is still the recipient's own receipt, not a write.
    assert!(a.quiet("status", Duration::from_millis(100)).await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_message_never_overtakes_the_backlog_of_a_device_that_has_not_synced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let (bob_token, _) = login(&s.url, "bob", None).await;
    let mut backlog = Vec::new();
    for i in 0..30 {
        backlog.push(a.say(&bob.id, &format!("b-{i}"), "old").await["msg_id"].clone());
    }
    // Bob connects and, before he syncs, a new message arrives: it waits
    // behind the backlog, which waits for his sync.
    let mut phone = Client::connect(&s.url, &bob_token).await;
    let live = a.say(&bob.id, "live", "new").await["msg_id"].clone();
    assert!(phone.quiet("msg", Duration::from_millis(300)).await);
    phone.send(json!({"type": "sync"})).await;
    let mut got = Vec::new();
    for _ in 0..31 {
        let m = phone.expect("msg").await;
        got.push((m["seq"].as_u64().unwrap(), m["msg_id"].clone()));
    }
    let expected: Vec<(u64, Value)> = backlog
        .iter()
        .chain([&live])
        .enumerate()
        .map(|(i, id)| (i as u64 + 1, id.clone()))
        .collect();
    assert_eq!(got, expected, "the backlog first, then the live one");
    // Another sync (he confirmed nothing) sends them all again, in order.
    phone.send(json!({"type": "sync"})).await;
    for (seq, _) in &expected {
        assert_eq!(phone.expect("msg").await["seq"].as_u64(), Some(*seq));
    }
    s.stop().await;
}

/// What one soak client does, told by the driver.
enum Cmd {
    Send {
        to: String,
        cid: String,
    },
    /// Kill the connection (a reset or a clean close), reconnect, and sync
    /// from what it stored (`since`) or from its confirmed cursor.
    Reconnect {
        reset: bool,
        since: bool,
    },
    /// Confirm everything stored so far.
    Confirm,
    /// Answer with the acks once every send is acked.
    Drain(oneshot::Sender<HashMap<String, (String, String)>>),
    /// Answer once every message of `expect` (msg_ids) has arrived.
    Finish {
        expect: HashSet<u64>,
        done: oneshot::Sender<Report>,
    },
}

#[derive(Debug, Default)]
struct Report {
    /// client_msg_id → msg_id, for every send acked.
    acked: HashMap<String, (String, String)>,
    /// Every `msg` frame in arrival order: (conversation, msg_id, from).
    arrivals: Vec<(String, u64, String)>,
    /// Ids seen more than once (dropped by a real client).
    duplicates: usize,
}

struct SoakClient {
    url: String,
    token: String,
    me: String,
    client: Option<Client>,
    /// seq → stored, for the contiguous prefix a client would confirm.
    stored: BTreeMap<u64, ()>,
    contiguous: u64,
    pending: BTreeMap<String, String>,
    seen: HashSet<u64>,
    report: Report,
}

impl SoakClient {
    async fn connect(&mut self, since: Option<u64>) {
        let mut c = Client::connect(&self.url, &self.token).await;
        match since {
            Some(s) => c.send(json!({"type": "sync", "since": s})).await,
            None => c.send(json!({"type": "sync"})).await,
        }
        // Sends not acked before the connection died go again: the same
        // client_msg_id gets the same message.
        for (cid, to) in &self.pending {
            c.send(text_to(to, cid, cid)).await;
        }
        self.client = Some(c);
    }

    fn take(&mut self, f: Value) {
        match f["type"].as_str() {
            Some("ack") => {
                let cid = f["client_msg_id"].as_str().unwrap().to_owned();
                if let Some(to) = self.pending.remove(&cid) {
                    let id = f["msg_id"].as_str().unwrap().to_owned();
                    self.report.acked.insert(cid, (id, to));
                }
            }
            Some("msg") => {
                let seq = f["seq"].as_u64().unwrap();
                self.stored.insert(seq, ());
                while self.stored.contains_key(&(self.contiguous + 1)) {
                    self.contiguous += 1;
                }
                let id: u64 = f["msg_id"].as_str().unwrap().parse().unwrap();
                if !self.seen.insert(id) {
                    self.report.duplicates += 1;
                    return;
                }
                self.report.arrivals.push((
                    f["conversation_id"].as_str().unwrap().to_owned(),
                    id,
                    f["from"].as_str().unwrap().to_owned(),
                ));
            }
            Some("error") => panic!("{}: unexpected error {f}", self.me),
            _ => {}
        }
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>) {
        self.connect(None).await;
        let mut draining = None;
        let mut finishing: Option<(HashSet<u64>, oneshot::Sender<Report>)> = None;
        loop {
            if self.pending.is_empty() {
                if let Some(d) = draining.take() {
                    let _ = oneshot::Sender::send(d, self.report.acked.clone());
                }
            }
            if let Some((expect, _)) = &finishing {
                if expect.is_subset(&self.seen) {
                    let (_, done) = finishing.take().unwrap();
                    let _ = done.send(std::mem::take(&mut self.report));
                    return;
                }
            }
            let waiting = draining.is_some() || finishing.is_some();
            let client = self.client.as_mut().unwrap();
            tokio::select! {
                f = client.recv() => match f {
                    Some(f) => self.take(f),
                    None => panic!("{}: socket closed by the server", self.me),
                },
                cmd = cmds.recv(), if !waiting => match cmd.unwrap() {
                    Cmd::Send { to, cid } => {
                        client.send(text_to(&to, &cid, &cid)).await;
                        self.pending.insert(cid, to);
                    }
                    Cmd::Reconnect { reset, since } => {
                        let c = self.client.take().unwrap();
                        if reset { c.reset() } else { c.close().await }
                        let since = since.then_some(self.contiguous);
                        self.connect(since).await;
                    }
                    Cmd::Confirm => {
                        let seq = self.contiguous;
                        client.send(json!({"type": "received", "seq": seq})).await;
                    }
                    Cmd::Drain(d) => draining = Some(d),
                    Cmd::Finish { expect, done } => finishing = Some((expect, done)),
                },
            }
        }
    }
}

/// 3 clients, 2,000 messages, connections reset or closed at random
/// points and resumed with and without `since`: every device ends with
/// every message addressed to it, once after dropping duplicates, in
/// `msg_id` order per conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_random_disconnects_lose_nothing_and_keep_order() {
    let seed: u64 = std::env::var("PARLEY_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261201);
    println!("soak seed {seed} (set PARLEY_SOAK_SEED to replay)");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // The soak sends faster than one person would.
    cfg.limits.sends_per_sec = 10_000;
    cfg.limits.sends_burst = 10_000;
    let s = Server::start_with(cfg).await;
    let names = ["ann", "ben", "cat"];
    let mut ids = Vec::new();
    let mut tx = Vec::new();
    let mut tasks = Vec::new();
    for name in names {
        let user = register(&s.url, name).await;
        let (token, _) = login(&s.url, name, None).await;
        let (t, r) = mpsc::channel(16);
        let c = SoakClient {
            url: s.url.clone(),
            token,
            me: name.to_owned(),
            client: None,
            stored: BTreeMap::new(),
            contiguous: 0,
            pending: BTreeMap::new(),
            seen: HashSet::new(),
            report: Report::default(),
        };
        tasks.push(tokio::spawn(c.run(r)));
        tx.push(t);
        ids.push(user.id);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..2_000 {
        let from = rng.gen_range(0..3);
        let to = (from + rng.gen_range(1..3)) % 3;
        let cmd = Cmd::Send {
            to: ids[to].clone(),
            cid: format!("s{i}"),
        };
        tx[from].send(cmd).await.unwrap();
        let who = rng.gen_range(0..3);
        match rng.gen_range(0..100) {
            0..=1 => {
                let cmd = Cmd::Reconnect {
                    reset: rng.gen_bool(0.5),
                    since: rng.gen_bool(0.5),
                };
                tx[who].send(cmd).await.unwrap();
            }
            2..=6 => tx[who].send(Cmd::Confirm).await.unwrap(),
            _ => {}
        }
    }
    // Every send acked...
    let mut acked = Vec::new();
    for t in &tx {
        let (d, r) = oneshot::channel();
        t.send(Cmd::Drain(d)).await.unwrap();
        let acks = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: sends never all acked"))
            .unwrap();
        acked.extend(acks.into_values());
    }
    assert_eq!(acked.len(), 2_000, "seed {seed}");
    // ...and every device ends with every message addressed to it.
    let mut reports = Vec::new();
    for (i, t) in tx.iter().enumerate() {
        let expect: HashSet<u64> = acked
            .iter()
            .filter(|(_, to)| *to == ids[i])
            .map(|(id, _)| id.parse().unwrap())
            .collect();
        let (d, r) = oneshot::channel();
        let n = expect.len();
        t.send(Cmd::Finish { expect, done: d }).await.unwrap();
        let report = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: {} never got all {n}", names[i]))
            .unwrap();
        reports.push(report);
    }
    for (i, report) in reports.iter().enumerate() {
        // Exactly what was addressed to it (and, after a `since`, what it
        // sent itself), each once after dropping duplicates...
        let others: HashSet<u64> = report
            .arrivals
            .iter()
            .filter(|(_, _, from)| *from != ids[i])
            .map(|(_, id, _)| *id)
            .collect();
        let expect: HashSet<u64> = acked
            .iter()
            .filter(|(_, to)| *to == ids[i])
            .map(|(id, _)| id.parse().unwrap())
            .collect();
        assert_eq!(others, expect, "seed {seed}: {}", names[i]);
        // ...in msg_id order per conversation. (Its own messages are not
        // deliveries: live they never come back to the device that sent
        // them, and a `since` replay may bring them late.)
        let mut last: HashMap<&str, u64> = HashMap::new();
        for (cid, id, _) in report.arrivals.iter().filter(|(_, _, f)| *f != ids[i]) {
            let prev = last.insert(cid, *id).unwrap_or(0);
            assert!(
                *id > prev,
                "seed {seed}: {} got {id} after {prev} in {cid}",
                names[i]
            );
        }
        println!(
            "{}: {} messages, {} duplicates dropped",
            names[i],
            report.arrivals.len(),
            report.duplicates
        );
    }
    for t in tasks {
        drop(t);
    }
    s.stop().await;
}
