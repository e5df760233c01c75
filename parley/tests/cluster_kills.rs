//! SIGKILL under a sustained load: Alice and Carol write to Bob's two
//! devices through the six-process cluster while an edge, a processor and
//! a delivery node are killed in turn, each taken over and then restarted
//! (its partitions move back, a second handover under load). The clients
//! do what the protocol asks of them: a send without an answer goes again
//! with its `client_msg_id`; a device whose socket died reconnects, syncs
//! from its confirmed cursor, and confirms what it stored. At the end every
//! acknowledged message has reached each of Bob's devices, once after
//! dropping duplicates, in `msg_id` order per conversation, and scrollback
//! holds each once.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use parley_schemas::ids::{ConversationId, UserId};
use parley_schemas::partition::{conversation_partition, user_partition};
use serde_json::{json, Value};
use tokio::sync::watch;

/// A sender's pause between messages: two senders stay under the per-user
/// send limit, and the six processes share two cores with the servers.
const PACE: Duration = Duration::from_millis(10);
/// Acks to wait for after each step, so every step happens under load.
const STEP: usize = 200;
/// Takeovers are bounded by the lease TTL (6 s) and a tick.
const TAKEOVER: Duration = Duration::from_secs(12);

/// The edges alive now; clients (re)connect to them in turn.
#[derive(Clone, Default)]
struct Edges(Arc<Mutex<Vec<String>>>);

impl Edges {
    fn set(&self, cl: &Cluster) {
        *self.0.lock().unwrap() = cl.role("ingest").iter().map(|n| n.url.clone()).collect();
    }

    /// A socket on the next edge in `turn` that takes one.
    async fn connect(&self, token: &str, turn: &mut usize) -> Client {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = {
                let edges = self.0.lock().unwrap();
                *turn += 1;
                edges[(*turn - 1) % edges.len()].clone()
            };
            if let Some(c) = Client::try_connect(&url, token).await {
                return c;
            }
            assert!(Instant::now() < deadline, "no edge took a socket");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn id(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

/// The `ack` or `error` that answers `cid`; `None` if the socket died or
/// stayed silent (its edge was killed).
async fn answer(c: &mut Client, cid: &str) -> Option<Value> {
    loop {
        let f = tokio::time::timeout(WAIT, c.recv()).await.ok()??;
        let answers = match f["type"].as_str() {
            Some("ack") => f["client_msg_id"] == cid,
            Some("error") => f["ref"] == cid,
            _ => false,
        };
        if answers {
            return Some(f);
        }
    }
}

/// Waits for STEP more acks than there are now.
async fn more(count: &mut watch::Receiver<usize>, what: &str) {
    let want = *count.borrow() + STEP;
    tokio::time::timeout(Duration::from_secs(60), count.wait_for(|&n| n >= want))
        .await
        .unwrap_or_else(|_| panic!("sends stalled: {what}"))
        .unwrap();
}

/// SIGKILLs `node` of `role`; once the others hold its partitions and
/// sends went on, starts it again, and waits until it has its share back
/// and sends went on again. `edges` follows the edges' addresses.
async fn kill_and_restart(
    cl: &mut Cluster,
    edges: &Edges,
    count: &mut watch::Receiver<usize>,
    role: &'static str,
    node: u16,
) {
    cl.kill(role, node);
    edges.set(cl);
    cl.settled(role, TAKEOVER).await;
    more(count, &format!("after {role} {node} was killed")).await;
    cl.spawn(role, node);
    edges.set(cl);
    cl.settled(role, SETTLE).await;
    more(count, &format!("after {role} {node} came back")).await;
}

/// client_msg_id → (conversation, msg_id) of every acknowledged send.
type Acks = Arc<Mutex<BTreeMap<String, (String, u64)>>>;

struct Sender {
    edges: Edges,
    token: String,
    tag: &'static str,
    to: String,
    conversation: String,
    acks: Acks,
    /// How many acks all senders have had.
    count: Arc<watch::Sender<usize>>,
}

impl Sender {
    /// Sends one message at a time until `stop`, each until it is acked;
    /// `turn` picks its first edge.
    async fn run(self, mut turn: usize, stop: watch::Receiver<bool>) {
        let mut conn: Option<Client> = None;
        let mut i = 0;
        while !*stop.borrow() {
            let cid = format!("{}-{i}", self.tag);
            let frame = text_to(&self.to, &cid, &format!("{} {i}", self.tag));
            let msg_id = loop {
                let c = match &mut conn {
                    Some(c) => c,
                    None => conn.insert(self.edges.connect(&self.token, &mut turn).await),
                };
                if !c.try_send(frame.clone()).await {
                    conn = None;
                    continue;
                }
                match answer(c, &cid).await {
                    Some(a) if a["type"] == "ack" => break id(&a["msg_id"]),
                    // A partition between owners, or the send limit: later.
                    Some(e) => {
                        let code = e["code"].as_str();
                        assert!(
                            matches!(code, Some("unavailable" | "rate_limited")),
                            "{}: {e}",
                            self.tag
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    None => conn = None,
                }
            };
            self.acks
                .lock()
                .unwrap()
                .insert(cid, (self.conversation.clone(), msg_id));
            self.count.send_modify(|n| *n += 1);
            i += 1;
            tokio::time::sleep(PACE).await;
        }
    }
}

/// What one device was sent, in order, across all its sockets.
#[derive(Default)]
struct Arrivals {
    order: Vec<(String, u64)>,
    seen: HashSet<u64>,
    sockets: usize,
}

/// One of Bob's devices, for the whole test: on every socket it syncs from
/// its confirmed cursor, and it confirms every 32 messages it stored.
/// `turn` picks its first edge.
async fn device(edges: Edges, mut turn: usize, token: String, out: Arc<watch::Sender<Arrivals>>) {
    loop {
        let mut c = edges.connect(&token, &mut turn).await;
        out.send_modify(|a| a.sockets += 1);
        if !c.try_send(json!({"type": "sync"})).await {
            continue;
        }
        let (mut top, mut unconfirmed) = (0, 0);
        while let Some(f) = c.recv().await {
            match f["type"].as_str() {
                Some("msg") => {
                    let (conv, msg_id) = (f["conversation_id"].as_str().unwrap(), id(&f["msg_id"]));
                    out.send_modify(|a| {
                        a.order.push((conv.to_owned(), msg_id));
                        a.seen.insert(msg_id);
                    });
                    top = top.max(f["seq"].as_u64().unwrap());
                    unconfirmed += 1;
                    if unconfirmed == 32 {
                        unconfirmed = 0;
                        if !c.try_send(json!({"type": "received", "seq": top})).await {
                            break;
                        }
                    }
                }
                Some("error") => panic!("device: unexpected error {f}"),
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_message_reaches_every_device_through_kills_under_load() {
    let mut cl = Cluster::start().await;
    let edges = Edges::default();
    edges.set(&cl);
    let e1 = cl.role("ingest")[0].url.clone();
    let alice = register(&e1, "alice").await;
    let carol = register(&e1, "carol").await;
    let bob = register(&e1, "bob").await;

    let (count_tx, mut count) = watch::channel(0usize);
    let count_tx = Arc::new(count_tx);
    let acks: Acks = Arc::default();
    let (stop_tx, stop) = watch::channel(false);
    let mut devices = Vec::new();
    let mut tasks = Vec::new();
    // One device and one sender on each edge.
    for turn in 0..2 {
        let (token, _) = login(&e1, "bob", None).await;
        let (tx, rx) = watch::channel(Arrivals::default());
        let d = device(edges.clone(), turn, token, Arc::new(tx));
        tasks.push(tokio::spawn(d));
        devices.push(rx);
    }
    let mut senders = Vec::new();
    for (turn, who, tag) in [(0, &alice, "a"), (1, &carol, "c")] {
        let (token, _) = login(&e1, &who.name, None).await;
        let s = Sender {
            edges: edges.clone(),
            token,
            tag,
            to: bob.id.clone(),
            conversation: direct(&who.id, &bob.id),
            acks: acks.clone(),
            count: count_tx.clone(),
        };
        senders.push(tokio::spawn(s.run(turn, stop.clone())));
    }
    more(&mut count, "before any kill").await;

    // The edge: sockets on it die; its append partitions move to the other.
    kill_and_restart(&mut cl, &edges, &mut count, "ingest", 1).await;
    // The processor that routes Alice's conversation.
    let conv: ConversationId = direct(&alice.id, &bob.id).parse().unwrap();
    let victim = cl.settled("process", SETTLE).await[&conversation_partition(&conv, PARTITIONS)];
    kill_and_restart(&mut cl, &edges, &mut count, "process", victim).await;
    // The delivery node that sequences Bob's inbox.
    let bob_uid = UserId(bob.id.parse().unwrap());
    let victim = cl.settled("deliver", SETTLE).await[&user_partition(bob_uid, PARTITIONS)];
    kill_and_restart(&mut cl, &edges, &mut count, "deliver", victim).await;

    stop_tx.send_replace(true);
    for s in senders {
        s.await.unwrap();
    }
    let acked: Vec<(String, u64)> = acks.lock().unwrap().values().cloned().collect();
    let expect: HashSet<u64> = acked.iter().map(|(_, m)| *m).collect();
    assert_eq!(expect.len(), acked.len(), "one msg_id per client_msg_id");

    for (d, rx) in devices.iter_mut().enumerate() {
        let all = rx.wait_for(|a| expect.is_subset(&a.seen));
        if tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .is_err()
        {
            let missing = expect.difference(&rx.borrow().seen).count();
            panic!(
                "device {d}: {missing} of {} acked never arrived",
                expect.len()
            );
        }
        let a = rx.borrow();
        assert_eq!(a.seen, expect, "device {d}: exactly what was acked");
        // First arrivals in msg_id order per conversation.
        let mut last: HashMap<&str, u64> = HashMap::new();
        let mut firsts = HashSet::new();
        for (conv, m) in &a.order {
            if firsts.insert(*m) {
                let prev = last.insert(conv, *m).unwrap_or(0);
                assert!(*m > prev, "device {d}: {m} after {prev} in {conv}");
            }
        }
        println!(
            "device {d}: {} messages on {} sockets, {} duplicates dropped",
            expect.len(),
            a.sockets,
            a.order.len() - expect.len()
        );
    }
    let reconnects = devices
        .iter()
        .map(|d| d.borrow().sockets - 1)
        .sum::<usize>();
    assert!(reconnects > 0, "the edge kill reached a device");
    for t in tasks {
        t.abort();
    }

    // Scrollback: each conversation, paged back to its start, holds every
    // acked message of it once.
    // (The first edge was restarted on another port.)
    let e = cl.role("ingest")[0].url.clone();
    let (token, _) = login(&e, "bob", None).await;
    for who in [&alice, &carol] {
        let cid = direct(&who.id, &bob.id);
        let mut want: Vec<u64> = acked
            .iter()
            .filter(|(c, _)| *c == cid)
            .map(|(_, m)| *m)
            .collect();
        want.sort_unstable_by(|a, b| b.cmp(a));
        eventually("every message once in scrollback", WAIT, || async {
            let got = scrollback(&e, &token, &cid).await;
            (got == want).then_some(())
        })
        .await;
    }
}
