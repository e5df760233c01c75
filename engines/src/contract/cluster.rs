//! What every [`Cluster`] must do, and how [`run_owned`] shares partitions
//! on top of it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parley_schemas::ids::UserId;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, Mail, Member};
use crate::contract::unique;
use crate::ownership::{run_owned, OwnershipSpec};

fn member(node: u32) -> Member {
    Member {
        node,
        addr: format!("127.0.0.1:{}", 9000 + node),
    }
}

pub async fn cluster_contract(c: Arc<dyn Cluster>) {
    let ttl = Duration::from_millis(400);

    // Membership: live members, ordered; expired ones drop out; leave.
    let g = unique("group");
    assert_eq!(
        c.heartbeat(&g, &member(2), ttl).await.unwrap(),
        vec![member(2)]
    );
    let both = c.heartbeat(&g, &member(1), ttl).await.unwrap();
    assert_eq!(both, vec![member(1), member(2)]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    c.heartbeat(&g, &member(1), ttl).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    // 2 has not beaten for 500 ms > ttl.
    assert_eq!(
        c.heartbeat(&g, &member(1), ttl).await.unwrap(),
        vec![member(1)]
    );
    c.heartbeat(&g, &member(3), ttl).await.unwrap();
    assert_eq!(c.members(&g).await.unwrap(), vec![member(1), member(3)]);
    c.leave(&g, 1).await.unwrap();
    assert_eq!(c.members(&g).await.unwrap(), vec![member(3)]);
    assert!(c.members(&unique("nobody")).await.unwrap().is_empty());
    assert_eq!(
        c.heartbeat(&g, &member(3), ttl).await.unwrap(),
        vec![member(3)]
    );

    // Leases: exclusive, renewable by the holder, free after expiry or release.
    let l = unique("lease");
    assert_eq!(c.holder(&l).await.unwrap(), None);
    assert!(c.lease(&l, 1, ttl).await.unwrap());
    assert!(!c.lease(&l, 2, ttl).await.unwrap());
    assert_eq!(c.holder(&l).await.unwrap(), Some(1));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(c.lease(&l, 1, ttl).await.unwrap(), "the holder renews");
        assert!(
            !c.lease(&l, 2, ttl).await.unwrap(),
            "renewed leases stay taken"
        );
    }
    c.release(&l, 2).await.unwrap(); // not the holder: no effect
    assert_eq!(c.holder(&l).await.unwrap(), Some(1));
    c.release(&l, 1).await.unwrap();
    assert_eq!(c.holder(&l).await.unwrap(), None);
    assert!(c.lease(&l, 2, ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.holder(&l).await.unwrap(), None, "expired");
    assert!(c.lease(&l, 1, ttl).await.unwrap());

    // Sessions: several nodes per user, removal, expiry, batched look-up.
    let base = rand::random::<u32>() as u64 * 1000;
    let (a, b, z) = (UserId(base + 1), UserId(base + 2), UserId(base + 3));
    c.session_add(a, 1, ttl).await.unwrap();
    c.session_add(a, 2, Duration::from_secs(30)).await.unwrap();
    c.session_add(b, 2, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        c.session_nodes(&[a, b, z]).await.unwrap(),
        vec![vec![1, 2], vec![2], vec![]]
    );
    c.session_remove(b, 2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        c.session_nodes(&[a, b]).await.unwrap(),
        vec![vec![2], vec![]],
        "node 1's entry expired, b's was removed"
    );
    assert!(c.session_nodes(&[]).await.unwrap().is_empty());

    // Mailboxes: what is published to a node reaches its subscriber only.
    let n = 100_000 + rand::random::<u32>() % 100_000;
    let mut rx = c.subscribe(n).await.unwrap();
    let mut other = c.subscribe(n + 1).await.unwrap();
    for i in 0..3u8 {
        c.publish(n, Bytes::from(vec![i; 3])).await.unwrap();
    }
    for i in 0..3u8 {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("mail arrives")
            .unwrap();
        assert_eq!(got, Mail::Message(Bytes::from(vec![i; 3])));
    }
    assert!(other.try_recv().is_err());
    c.publish(n + 7, Bytes::from_static(b"nobody"))
        .await
        .unwrap();

    ownership_contract(c).await;
}

/// Three nodes share 8 partitions with no overlap; when one dies without a
/// word, the others take its partitions within TTL + tick; when it comes
/// back, it gets a share again.
async fn ownership_contract(c: Arc<dyn Cluster>) {
    let scope = unique("scope");
    let group = unique("group");
    // (node, partition) → running, as the tasks see it.
    let running: Arc<Mutex<BTreeSet<(u32, u32)>>> = Default::default();
    let start_node = |node: u32| {
        let stop = CancellationToken::new();
        let mut spec = OwnershipSpec::new(&group, &scope, 8, member(node));
        spec.ttl = Duration::from_millis(1500);
        spec.tick = Duration::from_millis(200);
        let running = running.clone();
        let task = tokio::spawn(run_owned(c.clone(), spec, stop.clone(), move |p, stop| {
            let running = running.clone();
            async move {
                assert!(running.lock().unwrap().insert((node, p)), "started twice");
                stop.cancelled().await;
                running.lock().unwrap().remove(&(node, p));
            }
        }));
        (stop, task)
    };
    let (s1, t1) = start_node(1);
    let (s2, t2) = start_node(2);
    let (s3, t3) = start_node(3);
    let balanced = |o: &Vec<Vec<u32>>| {
        o.iter().all(|n| n.len() == 1)
            && (1..=3).all(|node| o.iter().filter(|n| n[0] == node).count() <= 3)
    };
    wait_for(
        &running,
        "three nodes share 8 partitions",
        balanced,
        Duration::from_secs(10),
    )
    .await;

    // Node 3 dies: no release, no leave. Its tasks stop with it.
    t3.abort();
    let _ = t3.await;
    s3.cancel();
    let began = Instant::now();
    let two_left = |o: &Vec<Vec<u32>>| o.iter().all(|n| n.len() == 1 && n[0] != 3);
    wait_for(
        &running,
        "survivors take over",
        two_left,
        Duration::from_secs(5),
    )
    .await;
    assert!(began.elapsed() < Duration::from_millis(1500 + 3 * 200 + 500));
    wait_for(
        &running,
        "and share evenly",
        |o| two_left(o) && (1..=2).all(|node| o.iter().filter(|n| n[0] == node).count() == 4),
        Duration::from_secs(5),
    )
    .await;

    // It comes back and gets a share.
    let (s3, t3) = start_node(3);
    wait_for(
        &running,
        "a returning node gets a share",
        |o| balanced(o) && o.iter().any(|n| n[0] == 3),
        Duration::from_secs(10),
    )
    .await;

    for (s, t) in [(s1, t1), (s2, t2), (s3, t3)] {
        s.cancel();
        t.await.unwrap();
    }
    assert!(running.lock().unwrap().is_empty());
    for p in 0..8 {
        let name = crate::cluster::lease_name(&scope, p);
        assert_eq!(
            c.holder(&name).await.unwrap(),
            None,
            "a clean stop frees its leases"
        );
    }
}

fn per_partition(running: &BTreeSet<(u32, u32)>) -> Vec<Vec<u32>> {
    let mut owners = vec![Vec::new(); 8];
    for (n, p) in running {
        owners[*p as usize].push(*n);
    }
    owners
}

async fn wait_for(
    running: &Mutex<BTreeSet<(u32, u32)>>,
    what: &str,
    ok: impl Fn(&Vec<Vec<u32>>) -> bool,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    while !ok(&per_partition(&running.lock().unwrap())) {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
