//! Media across processes: an upload on one edge, its thumbnail made by a
//! processor, the message through the pipeline, the download on the other
//! edge; access decided from what every node shares (the log, Redis, one
//! media store). Then the key directory across edges (one cluster start
//! serves both): no one-time prekey handed out twice, and the low-prekey
//! signal reaching a device on the other edge.

mod common;

use common::cluster::*;
use common::media::jpeg_with_exif;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_crosses_edges_and_processes() {
    let cl = Cluster::start().await;
    let edges = cl.role("ingest");
    let (one, two) = (edges[0].url.clone(), edges[1].url.clone());
    let (_, bob) = alice_and_bob(&one).await;
    register(&one, "carol").await;
    let (at, _) = login(&one, "alice", None).await;
    let (bt, _) = login(&two, "bob", None).await;
    let (ct, _) = login(&two, "carol", None).await;

    let bytes = jpeg_with_exif(800, 600);
    let r = reqwest::Client::new()
        .post(format!("{one}/v1/media"))
        .bearer_auth(&at)
        .header("content-type", "image/jpeg")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["media_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Made by a processor, served by the other edge.
    let thumb = format!("/v1/media/{id}/thumbnail");
    eventually("the thumbnail, through the other edge", WAIT, || {
        let (url, at, path) = (two.clone(), at.clone(), thumb.clone());
        async move { (get(&url, &at, &path).await.0 == 200).then_some(()) }
    })
    .await;

    let mut a = Client::connect(&one, &at).await;
    let mut b = Client::connect(&two, &bt).await;
    a.send(
        json!({"type": "send", "client_msg_id": "pic", "to": {"user": bob.id},
                  "body": {"media": {"media_id": id}}}),
    )
    .await;
    a.expect("ack").await;
    let msg = b.expect("msg").await;
    assert_eq!(msg["body"]["media"]["width"], 800);
    let fetch = |url: String, token: String| {
        let id = id.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{url}/v1/media/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let r = fetch(two.clone(), bt.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == bytes);
    assert_eq!(fetch(two.clone(), ct.clone()).await.status(), 404);
    assert_eq!(fetch(one.clone(), ct.clone()).await.status(), 404);

    keys_across_edges(&one, &two, &at, &bt, &ct, &bob.id).await;
}

async fn keys_across_edges(one: &str, two: &str, at: &str, bt: &str, ct: &str, bob: &str) {
    use base64::Engine;
    let b64 =
        |n: u32| base64::engine::general_purpose::STANDARD.encode([n.to_be_bytes(); 8].concat());
    let prekeys: Vec<_> = (0..20)
        .map(|id| json!({"id": id, "key": b64(id)}))
        .collect();
    let upload = json!({"identity_key": b64(100), "one_time_prekeys": prekeys,
        "signed_prekey": {"id": 1, "key": b64(101), "signature": b64(102) }});
    let put = format!("{two}/v1/devices/me/keys");
    let (status, _) = call(reqwest::Method::PUT, &put, bt, Some(upload)).await;
    assert_eq!(status, 204);
    let mut b = Client::connect(one, bt).await;
    let path = format!("/v1/users/{bob}/keys");
    let claims = |url: String, token: String, path: String| async move {
        let mut ids = Vec::new();
        for _ in 0..12 {
            let (status, v) = get(&url, &token, &path).await;
            assert_eq!(status, 200, "{v}");
            ids.extend(v["devices"][0]["one_time_prekey"]["id"].as_u64());
        }
        ids
    };
    let (x, y) = tokio::join!(
        tokio::spawn(claims(one.to_owned(), at.to_owned(), path.clone())),
        tokio::spawn(claims(two.to_owned(), ct.to_owned(), path.clone())),
    );
    let mut ids = [x.unwrap(), y.unwrap()].concat();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..20).collect::<Vec<u64>>(),
        "each once, across edges"
    );
    // Bob's socket is on the other edge from the one he uploaded through.
    let low = b.expect("prekeys_low").await;
    assert!(low["remaining"].as_u64().unwrap() < 10, "{low}");
}
