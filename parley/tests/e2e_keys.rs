//! End-to-end encryption through the protocol: the key directory (each
//! one-time prekey handed out once, low-prekey signals, keys gone with a
//! signed-out device, bad keys refused) and opaque `e2e` bodies.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// 32 bytes of base64, distinct per `n`.
fn key(n: u32) -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A 64-byte signature's worth of base64.
fn signature(n: u32) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([n as u8; 64])
}

fn upload(identity: u32, prekeys: std::ops::Range<u32>) -> Value {
    json!({
        "identity_key": key(identity),
        "signed_prekey": {"id": 1, "key": key(identity + 1), "signature": signature(identity)},
        "one_time_prekeys": prekeys.map(|id| json!({"id": id, "key": key(1000 + id)})).collect::<Vec<_>>(),
    })
}

async fn put_keys(url: &str, token: &str, body: Value) -> (u16, Value) {
    let path = format!("{url}/v1/devices/me/keys");
    call(reqwest::Method::PUT, &path, token, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_one_time_prekey_is_handed_out_once_and_devices_hear_when_they_run_low() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, _bob) = alice_and_bob(&s.url).await;
    register(&s.url, "carol").await;
    let (phone, phone_id) = login(&s.url, "alice", None).await;
    let (laptop, laptop_id) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;

    // Nothing published yet: no devices.
    let path = format!("/v1/users/{}/keys", alice.id);
    assert_eq!(get(&s.url, &bt, &path).await, (200, json!({"devices": []})));
    assert_eq!(put_keys(&s.url, &phone, upload(1, 0..14)).await.0, 204);
    assert_eq!(put_keys(&s.url, &laptop, upload(10, 100..101)).await.0, 204);
    let (status, mine) = get(&s.url, &phone, "/v1/devices/me/keys").await;
    assert_eq!((status, &mine["one_time_prekeys"]), (200, &json!(14)));
    assert_eq!(mine["identity_key"], key(1));

    let mut phone_ws = Client::connect(&s.url, &phone).await;
    // Bob and Carol fetch at once, from two tasks: every prekey of the
    // phone goes to exactly one of them, then bundles come without one.
    let fetch = |token: String, url: String, path: String| async move {
        let mut got = Vec::new();
        for _ in 0..10 {
            let (status, v) = get(&url, &token, &path).await;
            assert_eq!(status, 200, "{v}");
            got.push(v);
        }
        got
    };
    let (b, c) = tokio::join!(
        tokio::spawn(fetch(bt.clone(), s.url.clone(), path.clone())),
        tokio::spawn(fetch(ct.clone(), s.url.clone(), path.clone())),
    );
    let answers: Vec<Value> = b.unwrap().into_iter().chain(c.unwrap()).collect();
    let mut phone_prekeys = Vec::new();
    let mut laptop_prekeys = 0;
    for a in &answers {
        let devices = a["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 2, "{a}");
        for d in devices {
            if d["device_id"] == phone_id.as_str() {
                assert_eq!(d["identity_key"], key(1));
                assert_eq!(d["signed_prekey"]["key"], key(2));
                assert!(d["signed_prekey"]["signature"].is_string());
                if let Some(p) = d.get("one_time_prekey") {
                    assert_eq!(p["key"], key(1000 + p["id"].as_u64().unwrap() as u32));
                    phone_prekeys.push(p["id"].as_u64().unwrap());
                }
            } else {
                assert_eq!(d["device_id"], laptop_id.as_str(), "phone {phone_id}: {a}");
                laptop_prekeys += usize::from(d.get("one_time_prekey").is_some());
            }
        }
    }
    let unique: HashSet<_> = phone_prekeys.iter().collect();
    assert_eq!(phone_prekeys.len(), 14, "all handed out: {phone_prekeys:?}");
    assert_eq!(unique.len(), 14, "none twice: {phone_prekeys:?}");
    assert_eq!(laptop_prekeys, 1);

    // The phone was told, on its socket, that it runs low (signals name
    // the device: every device of the user hears each, the laptop's too).
    let low = loop {
        let low = phone_ws.expect("prekeys_low").await;
        if low["device_id"] == phone_id.as_str() {
            break low;
        }
        assert_eq!(low["device_id"], laptop_id.as_str());
    };
    assert!(low["remaining"].as_u64().unwrap() < 10, "{low}");
    // And again when it connects while still low.
    let mut again = Client::connect(&s.url, &phone).await;
    let low = again.expect("prekeys_low").await;
    assert_eq!(
        (low["device_id"].as_str(), low["remaining"].as_u64()),
        (Some(phone_id.as_str()), Some(0))
    );
    // It uploads more; a connection then hears nothing.
    assert_eq!(put_keys(&s.url, &phone, upload(1, 200..220)).await.0, 204);
    let mut topped_up = Client::connect(&s.url, &phone).await;
    topped_up.send(json!({"type": "sync"})).await;
    assert!(
        topped_up
            .quiet("prekeys_low", Duration::from_millis(300))
            .await
    );

    // A signed-out device leaves the directory.
    let r = call(
        reqwest::Method::DELETE,
        &format!("{}/v1/sessions/current", s.url),
        &laptop,
        None,
    )
    .await;
    assert_eq!(r.0, 204);
    let (_, v) = get(&s.url, &bt, &path).await;
    let devices: Vec<_> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].clone())
        .collect();
    assert_eq!(devices, vec![json!(phone_id)]);

    // Counted.
    assert!(metric(&s.url, "parley_key_bundles_total", "prekey=\"given\"").await >= 16.0);
    assert!(metric(&s.url, "parley_key_bundles_total", "prekey=\"none_left\"").await >= 1.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.key_claims_per_min = 3;
    let s = Server::start_with(cfg).await;
    let (alice, _) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    assert_eq!(put_keys(&s.url, &at, upload(1, 0..3)).await.0, 204);

    let mut not_base64 = upload(1, 0..1);
    not_base64["identity_key"] = json!("not base64!");
    let mut repeated = upload(1, 0..1);
    repeated["one_time_prekeys"] = json!([{"id": 5, "key": key(5)}, {"id": 5, "key": key(6)}]);
    let mut no_signature = upload(1, 0..1);
    no_signature["signed_prekey"] = json!({"id": 1, "key": key(2)});
    for (bad, code) in [
        (not_base64, "bad_request"),
        (repeated, "bad_request"),
        (no_signature, "bad_request"),
        (upload(1, 0..101), "too_large"),
        (json!("keys"), "bad_request"),
    ] {
        let (status, v) = put_keys(&s.url, &at, bad.clone()).await;
        assert_eq!(v["code"], code, "{bad}: {v}");
        assert!(status == 400 || status == 413, "{status}");
    }
    let (_, mine) = get(&s.url, &at, "/v1/devices/me/keys").await;
    assert_eq!(mine["one_time_prekeys"], 3, "unchanged");
    // A device holds at most 500 one-time prekeys.
    for batch in 0..4 {
        let ids = 1000 + batch * 100..1100 + batch * 100;
        assert_eq!(put_keys(&s.url, &at, upload(1, ids)).await.0, 204);
    }
    let (status, v) = put_keys(&s.url, &at, upload(1, 2000..2100)).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (413, Some("too_large")),
        "{v}"
    );
    let (_, mine) = get(&s.url, &at, "/v1/devices/me/keys").await;
    assert_eq!(mine["one_time_prekeys"], 403);

    // Fetching: unknown users are 404, no token is 401, and the rate limit holds.
    assert_eq!(
        get(&s.url, &bt, "/v1/users/999999/keys").await.1["code"],
        "not_found"
    );
    assert_eq!(
        get(&s.url, "nope", &format!("/v1/users/{}/keys", alice.id))
            .await
            .0,
        401
    );
    let path = format!("/v1/users/{}/keys", alice.id);
    // The 404 took one of Bob's 3 a minute.
    let mut codes = Vec::new();
    for _ in 0..2 {
        codes.push(get(&s.url, &bt, &path).await.0);
    }
    assert_eq!(codes, vec![200, 200]);
    let (status, v) = get(&s.url, &bt, &path).await;
    assert_eq!((status, v["code"].as_str()), (429, Some("rate_limited")));
    assert!(metric(&s.url, "parley_limit_hits_total", "limit=\"key_claims\"").await >= 1.0);
    assert!(metric(&s.url, "parley_limit_hits_total", "limit=\"prekeys\"").await >= 1.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bodies_travel_opaque_and_bad_ones_get_an_error_frame() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(json!({"type": "sync"})).await;

    let e2e =
        json!({"v": 1, "sender_key": key(7), "ciphertexts": {"2:1": {"type": 0, "body": key(9)}}});
    for (n, body) in [
        json!({"e2e": "AAEC"}),
        json!({"e2e": {}}),
        json!({"e2e": [1, 2]}),
    ]
    .into_iter()
    .enumerate()
    {
        a.send(json!({"type": "send", "client_msg_id": format!("bad-{n}"), "to": {"user": bob.id}, "body": body})).await;
        let err = a.expect("error").await;
        assert_eq!(err["code"], "bad_request", "{err}");
    }
    let huge = json!({"ciphertexts": {"1:1": "A".repeat(300 * 1024)}});
    a.send(json!({"type": "send", "client_msg_id": "huge", "to": {"user": bob.id}, "body": {"e2e": huge}})).await;
    assert_eq!(a.expect("error").await["code"], "too_large");

    // The socket is still open: a good one goes through untouched.
    a.send(json!({"type": "send", "client_msg_id": "e1", "to": {"user": bob.id}, "body": {"e2e": e2e}})).await;
    let ack = a.expect("ack").await;
    let msg = b.expect("msg").await;
    assert_eq!(msg["msg_id"], ack["msg_id"]);
    assert_eq!(msg["body"], json!({"e2e": e2e}));
    // Scrollback and the conversation list carry it as sent.
    let cid = ack["conversation_id"].as_str().unwrap();
    let path = format!("/v1/conversations/{cid}/messages");
    let page = eventually("in scrollback", WAIT, || async {
        let (_, page) = get(&s.url, &bt, &path).await;
        (page["messages"][0]["msg_id"] == ack["msg_id"]).then_some(page)
    })
    .await;
    assert_eq!(page["messages"][0]["body"], json!({"e2e": e2e}));
    let (_, list) = get(&s.url, &bt, "/v1/conversations").await;
    assert_eq!(
        list["conversations"][0]["last_message"]["body"],
        json!({"e2e": e2e})
    );
    s.stop().await;
}
