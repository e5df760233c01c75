//! Notifications through the protocol, to a webhook receiver this test
//! runs: one signed notification per burst for a user who is away, none
//! for one in the foreground or for a muted conversation, previews only
//! when allowed and never of an `e2e` body, delivery after the receiver
//! comes back, and dead letters when it never does.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use common::*;
use parley_processors::notify::webhook::{verify, SIGNATURE_HEADER};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const SECRET: &str = "a webhook secret of at least 32 bytes!";

/// What the receiver got: the signature header and the body.
struct Hook {
    signature: String,
    body: Vec<u8>,
}

impl Hook {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on `addr` answering `status` (changeable); `hits`
/// counts every request, whatever the answer. (Metrics are shared by the
/// tests of this binary, which run at once: counts are taken here.)
async fn receiver(
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    hits: Arc<std::sync::atomic::AtomicUsize>,
) -> mpsc::UnboundedReceiver<Hook> {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (tx, status, hits) = (tx.clone(), status.clone(), hits.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let code = status.load(Ordering::SeqCst);
                if code == 200 {
                    let signature = headers[SIGNATURE_HEADER].to_str().unwrap().to_owned();
                    let _ = tx.send(Hook {
                        signature,
                        body: body.to_vec(),
                    });
                }
                StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    rx
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn notify_config(dir: &std::path::Path, hook: SocketAddr) -> parley::Config {
    let mut cfg = config(dir);
    cfg.notify.webhook_url = Some(format!("http://{hook}/hook"));
    cfg.notify.webhook_secret = Some(SECRET.into());
    cfg.notify.collapse_ms = 1_000;
    cfg.notify.every_ms = 50;
    cfg.notify.backoff_ms = 100;
    cfg.notify.max_backoff_ms = 200;
    cfg.notify.timeout_ms = 2_000;
    cfg
}

async fn subscribe(url: &str, token: &str, device_token: &str) -> String {
    let (status, v) = call(
        reqwest::Method::POST,
        &format!("{url}/v1/push/subscriptions"),
        token,
        Some(json!({"kind": "webhook", "token": device_token, "platform": "fcm"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["subscription_id"].as_str().unwrap().to_owned()
}

async fn next_hook(rx: &mut mpsc::UnboundedReceiver<Hook>) -> Hook {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a webhook in time")
        .unwrap()
}

/// Sends `texts` to `to` at once, then waits for every ack.
async fn burst(c: &mut Client, to: &str, texts: &[String]) {
    for (i, t) in texts.iter().enumerate() {
        c.send(json!({"type": "send", "client_msg_id": format!("{t}-{i}"), "to": {"user": to}, "body": {"text": t}}))
            .await;
    }
    for _ in texts {
        c.expect("ack").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_users_get_one_signed_webhook_per_burst_and_others_none() {
    let dir = tempfile::tempdir().unwrap();
    let hook_addr = free_addr();
    let hits = Arc::default();
    let mut hooks = receiver(hook_addr, Arc::new(AtomicU16::new(200)), hits).await;
    let s = Server::start_with(notify_config(dir.path(), hook_addr)).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;
    let bob_sub = subscribe(&s.url, &bt, "bob-phone").await;
    subscribe(&s.url, &ct, "carol-phone").await;
    // The same subscription again is the same one.
    assert_eq!(subscribe(&s.url, &bt, "bob-phone").await, bob_sub);
    let (_, list) = get(&s.url, &bt, "/v1/push/subscriptions").await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1, "{list}");

    // Carol is in the foreground: her app says so every few seconds.
    let mut c = Client::connect(&s.url, &ct).await;
    c.send(json!({"type": "heartbeat", "active": true})).await;
    let path = format!("/v1/users/{}/presence", carol.id);
    // Active, not only online: last seen moves with active heartbeats
    // only (the socket's own background one makes her online first).
    eventually("carol in the foreground", WAIT, || async {
        let p = get(&s.url, &ct, &path).await.1;
        (p["online"] == true && p["last_seen"].is_u64()).then_some(())
    })
    .await;

    // Twenty messages to Bob, who has no socket: one notification.
    let mut a = Client::connect(&s.url, &at).await;
    let texts: Vec<String> = (0..20).map(|i| format!("burst {i}")).collect();
    burst(&mut a, &bob.id, &texts).await;
    burst(&mut a, &carol.id, &["hi carol".to_owned()]).await;
    let first = next_hook(&mut hooks).await;
    let v = first.json();
    assert_eq!(v["user_id"], bob.id.as_str(), "{v}");
    assert_eq!(v["count"], 20, "{v}");
    assert_eq!(
        (v["token"].as_str(), v["platform"].as_str()),
        (Some("bob-phone"), Some("fcm"))
    );
    assert_eq!(v["subscription_id"], bob_sub.as_str());
    assert_eq!(v["conversation_id"], direct(&alice.id, &bob.id).as_str());
    // No previews by default: nothing of the text.
    assert_eq!(
        (v["title"].as_str(), v["body"].as_str()),
        (Some("Parley"), Some("20 new messages"))
    );
    // Signed; any change to the body or the key is detected.
    let now = parley_schemas::ids::now_ms();
    assert!(verify(
        SECRET.as_bytes(),
        &first.signature,
        &first.body,
        now,
        60_000
    ));
    let mut tampered = first.body.clone();
    tampered[10] ^= 1;
    assert!(!verify(
        SECRET.as_bytes(),
        &first.signature,
        &tampered,
        now,
        60_000
    ));
    assert!(!verify(
        b"another secret of at least 32 bytes!!",
        &first.signature,
        &first.body,
        now,
        60_000
    ));
    assert_eq!(c.expect("msg").await["body"]["text"], "hi carol");

    // Previews allowed: the sender and the text; never an e2e body's.
    let (status, set) = call(
        reqwest::Method::PUT,
        &format!("{}/v1/push/settings", s.url),
        &bt,
        Some(json!({"previews": true})),
    )
    .await;
    assert_eq!((status, &set["previews"]), (200, &json!(true)));
    burst(&mut a, &bob.id, &["see you at 8".to_owned()]).await;
    let v = next_hook(&mut hooks).await.json();
    assert_eq!(
        (v["title"].as_str(), v["body"].as_str()),
        (Some("alice"), Some("see you at 8")),
        "{v}"
    );
    a.send(json!({"type": "send", "client_msg_id": "secret", "to": {"user": bob.id}, "body": {"e2e": {"ciphertexts": {"x": "AAAA"}}}})).await;
    a.expect("ack").await;
    let v = next_hook(&mut hooks).await.json();
    assert_eq!(
        (v["title"].as_str(), v["body"].as_str()),
        (Some("Parley"), Some("New message")),
        "{v}"
    );

    // A muted conversation gets none.
    let cid = direct(&alice.id, &bob.id);
    let mute = format!("{}/v1/conversations/{cid}/mute", s.url);
    assert_eq!(call(reqwest::Method::PUT, &mute, &bt, None).await.0, 204);
    let (_, settings) = get(&s.url, &bt, "/v1/push/settings").await;
    assert_eq!(settings["muted"][&cid], 0, "{settings}");
    burst(&mut a, &bob.id, &["muted".to_owned()]).await;
    eventually("the muted one skipped", WAIT, || async {
        let n = metric(
            &s.url,
            "parley_notifications_skipped_total",
            "why=\"muted\"",
        )
        .await;
        (n >= 1.0).then_some(())
    })
    .await;
    // Not a member: no muting someone else's conversation.
    let theirs = format!(
        "{}/v1/conversations/{}/mute",
        s.url,
        direct(&alice.id, &carol.id)
    );
    assert_eq!(
        call(reqwest::Method::PUT, &theirs, &bt, None).await.1["code"],
        "forbidden"
    );
    assert_eq!(call(reqwest::Method::DELETE, &mute, &bt, None).await.0, 204);
    burst(&mut a, &bob.id, &["unmuted".to_owned()]).await;
    let v = next_hook(&mut hooks).await.json();
    assert_eq!(v["body"], "unmuted");

    // Nothing else arrived: not for Carol, not a second for a burst.
    assert!(hooks.try_recv().is_err());

    // Bad subscriptions are refused; signing out removes the device's.
    for bad in [
        json!({"kind": "webhook", "token": ""}),
        json!({"kind": "carrier-pigeon"}),
        json!({"kind": "webpush", "endpoint": "http://example.com/x", "keys": {"p256dh": "AA", "auth": "AA"}}),
    ] {
        let (status, v) = call(
            reqwest::Method::POST,
            &format!("{}/v1/push/subscriptions", s.url),
            &bt,
            Some(bad),
        )
        .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("bad_request")),
            "{v}"
        );
    }
    let gone = format!("{}/v1/push/subscriptions/{bob_sub}", s.url);
    assert_eq!(
        call(reqwest::Method::DELETE, &gone, &ct, None).await.0,
        404,
        "not Carol's to remove"
    );
    call(
        reqwest::Method::DELETE,
        &format!("{}/v1/sessions/current", s.url),
        &bt,
        None,
    )
    .await;
    let (bt2, _) = login(&s.url, "bob", None).await;
    let (_, list) = get(&s.url, &bt2, "/v1/push/subscriptions").await;
    assert_eq!(list["subscriptions"], json!([]));
    s.stop().await;
}

/// A server whose webhook is at `hook` (tried `max_tries` times), where
/// Alice sends `text` to Bob, who is away with one subscription.
async fn message_to_away_bob(
    dir: &std::path::Path,
    hook: SocketAddr,
    max_tries: u32,
    text: &str,
) -> (Server, User) {
    let mut cfg = notify_config(dir, hook);
    cfg.notify.max_tries = max_tries;
    let s = Server::start_with(cfg).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    subscribe(&s.url, &bt, "bob-phone").await;
    let mut a = Client::connect(&s.url, &at).await;
    burst(&mut a, &bob.id, &[text.to_owned()]).await;
    (s, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_it_when_back_and_one_never_back_gets_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here yet: connections are refused.
    let hook_addr = free_addr();
    let (s, bob) = message_to_away_bob(dir.path(), hook_addr, 1_000, "are you there").await;
    eventually("retried while the receiver is down", WAIT, || async {
        let n = metric(
            &s.url,
            "parley_notifications_retried_total",
            "sink=\"webhook\"",
        )
        .await;
        (n >= 2.0).then_some(())
    })
    .await;
    let mut hooks = receiver(hook_addr, Arc::new(AtomicU16::new(200)), Arc::default()).await;
    let v = next_hook(&mut hooks).await.json();
    assert_eq!(
        (v["user_id"].as_str(), v["count"].as_u64()),
        (Some(bob.id.as_str()), Some(1))
    );
    s.stop().await;

    // A receiver that always fails: given up after max_tries, kept in
    // `notify-dead`, and not tried again.
    let dir = tempfile::tempdir().unwrap();
    let hook_addr = free_addr();
    let status = Arc::new(AtomicU16::new(500));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let _hooks = receiver(hook_addr, status, hits.clone()).await;
    let (s, _bob) = message_to_away_bob(dir.path(), hook_addr, 3, "hello?").await;
    eventually("dead-lettered", WAIT, || async {
        let n = metric(
            &s.url,
            "parley_notifications_dead_lettered_total",
            "sink=\"webhook\"",
        )
        .await;
        (n >= 1.0).then_some(())
    })
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 3, "max_tries attempts");
    s.stop().await;
    assert_eq!(hits.load(Ordering::SeqCst), 3, "none after the dead letter");
    // The dead letter is in the log: a segment of `notify-dead` holds it.
    let topic = dir.path().join("log/topics/notify-dead");
    let mut found = false;
    for p in std::fs::read_dir(&topic).unwrap() {
        let p = p.unwrap().path();
        if p.is_dir() {
            for f in std::fs::read_dir(&p).unwrap() {
                let data = std::fs::read(f.unwrap().path()).unwrap_or_default();
                found |= data.windows(9).any(|w| w == b"bob-phone");
            }
        }
    }
    assert!(
        found,
        "no dead letter for bob-phone under {}",
        topic.display()
    );
}
