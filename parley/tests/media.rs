//! Media through the protocol: upload, send, download by members only,
//! ranges, dedup, bad input, group spans, and access rebuilt from the log.

mod common;

use common::media::*;
use common::*;
use reqwest::header;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_download_what_was_sent_and_no_one_else_learns_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;

    let bytes = png_like(300_000, 1);
    let (status, up) = upload(&s.url, &at, "image/png", bytes.clone()).await;
    assert_eq!(status, 201, "{up}");
    let id = up["media_id"].as_str().unwrap().to_owned();
    assert_eq!(up["sha256"], format!("{:x}", Sha256::digest(&bytes)));
    assert_eq!(up["size"], bytes.len());
    assert_eq!(up["mime"], "image/png");

    // Before it is sent: the uploader only.
    assert_eq!(status_of(&s.url, &at, &id).await, 200);
    assert_eq!(status_of(&s.url, &bt, &id).await, 404);
    // Bob may not send on what he has not received.
    let mut b = Client::connect(&s.url, &bt).await;
    b.send(media_to(json!({"user": "1"}), "b0", &id)).await;
    let e = b.expect("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("forbidden"), Some("b0"))
    );

    let mut a = Client::connect(&s.url, &at).await;
    a.send(media_to(json!({"user": bob.id}), "m1", &id)).await;
    a.expect("ack").await;
    let msg = b.expect("msg").await;
    // The type is the sniffed one, whatever the sender claimed.
    assert_eq!(
        msg["body"]["media"],
        json!({"media_id": id, "mime": "image/png", "caption": "look", "size": bytes.len()})
    );

    // Scrollback and the conversation list show it as sent.
    let cid = msg["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/conversations/{cid}/messages");
    let page = eventually("the media message in scrollback", WAIT, || {
        let (url, bt, path) = (s.url.clone(), bt.clone(), path.clone());
        async move {
            let (_, page) = get(&url, &bt, &path).await;
            (page["messages"].as_array()?.len() == 1).then_some(page)
        }
    })
    .await;
    assert_eq!(page["messages"][0]["body"], msg["body"]);
    let (_, list) = get(&s.url, &bt, "/v1/conversations").await;
    assert_eq!(
        list["conversations"][0]["last_message"]["body"],
        msg["body"]
    );

    let r = fetch(&s.url, &bt, &id, None).await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "image/png");
    assert_eq!(
        h[header::ETAG],
        format!("\"{}\"", up["sha256"].as_str().unwrap())
    );
    assert!(h[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .starts_with("private"));
    assert!(h[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("immutable"));
    assert_eq!(r.bytes().await.unwrap(), bytes);
    // A stranger is told it does not exist, as for an id never issued.
    assert_eq!(status_of(&s.url, &ct, &id).await, 404);
    assert_eq!(
        status_of(&s.url, &ct, "0123456789abcdef0123456789abcdef").await,
        404
    );
    assert_eq!(status_of(&s.url, &bt, "..%2F..%2Fetc%2Fpasswd").await, 404);

    // Ranges, HEAD, conditional.
    let r = fetch(&s.url, &bt, &id, Some("bytes=10-19")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()[header::CONTENT_RANGE],
        format!("bytes 10-19/{}", bytes.len())
    );
    assert_eq!(r.bytes().await.unwrap(), bytes[10..20]);
    let r = fetch(&s.url, &bt, &id, Some(&format!("bytes={}-", bytes.len()))).await;
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()[header::CONTENT_RANGE],
        format!("bytes */{}", bytes.len())
    );
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "bad_request");
    let head = reqwest::Client::new()
        .head(format!("{}/v1/media/{id}", s.url))
        .bearer_auth(&bt)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH],
        bytes.len().to_string()
    );
    let again = reqwest::Client::new()
        .get(format!("{}/v1/media/{id}", s.url))
        .bearer_auth(&bt)
        .header(header::IF_NONE_MATCH, h[header::ETAG].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // No thumbnail of bytes that are no real image.
    let (status, _) = get(&s.url, &bt, &format!("/v1/media/{id}/thumbnail")).await;
    assert_eq!(status, 404);

    // Bob may forward what he received; Carol, once it reaches her, may
    // fetch it.
    let mut c = Client::connect(&s.url, &ct).await;
    b.send(media_to(json!({"user": carol.id}), "fwd", &id))
        .await;
    b.expect("ack").await;
    c.expect("msg").await;
    assert_eq!(status_of(&s.url, &ct, &id).await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.media_max_bytes = 100_000;
    let s = Server::start_with(cfg).await;
    register(&s.url, "alice").await;
    let bob = register(&s.url, "bob").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;

    let (status, e) = upload(&s.url, &at, "image/png", Vec::new()).await;
    assert_eq!((status, e["code"].as_str()), (400, Some("bad_request")));
    let (status, e) = upload(&s.url, &at, "image/jpeg", png_like(100, 0)).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("bad_request")),
        "{e}"
    );
    let (status, e) = upload(&s.url, &at, "image/png", b"not an image".to_vec()).await;
    assert_eq!(status, 400, "{e}");
    let size_hits = || metric(&s.url, "parley_limit_hits_total", "limit=\"media_size\"");
    let hits_before = size_hits().await;
    // Over the limit, declared or not: nothing is kept.
    let (status, e) = upload(&s.url, &at, "image/png", png_like(200_000, 0)).await;
    assert_eq!((status, e["code"].as_str()), (413, Some("too_large")));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = png_like(200_000, 0)
        .chunks(16_384)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/media", s.url))
        .bearer_auth(&at)
        .header(header::CONTENT_TYPE, "image/png")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A body cut off half-way: the client is gone, and nothing is kept.
    {
        use tokio::io::AsyncWriteExt;
        let addr = s.url.trim_start_matches("http://").to_owned();
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/media HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {at}\r\n\
             Content-Type: image/png\r\nContent-Length: 50000\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&png_like(20_000, 4)).await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut rest).await;
    }
    eventually("the cut upload's temp file gone", WAIT, || async {
        (files(dir.path(), "Tmp") == 0).then_some(())
    })
    .await;
    assert_eq!(files(dir.path(), "blobs"), 0);
    assert_eq!(size_hits().await - hits_before, 2.0);

    // Unknown bytes are stored as bytes, and served as a download.
    let (status, up) = upload(&s.url, &at, "text/html", b"<script>x</script>".to_vec()).await;
    assert_eq!(
        (status, up["mime"].as_str()),
        (201, Some("application/octet-stream"))
    );
    let r = fetch(&s.url, &at, up["media_id"].as_str().unwrap(), None).await;
    assert_eq!(r.headers()[header::CONTENT_DISPOSITION], "attachment");
    assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

    // The same bytes twice (by two users): two ids, one blob.
    let bytes = png_like(50_000, 9);
    let (_, one) = upload(&s.url, &at, "image/png", bytes.clone()).await;
    let (_, two) = upload(&s.url, &bt, "application/octet-stream", bytes).await;
    assert_ne!(one["media_id"], two["media_id"]);
    assert_eq!(one["sha256"], two["sha256"]);
    assert_eq!(files(dir.path(), "blobs"), 2, "one blob per content");

    // A media id that is malformed or not the sender's is refused, over
    // HTTP as over the socket (which stays open).
    let mut a = Client::connect(&s.url, &at).await;
    let bob_id = bob.id;
    for (cid, id) in [("x1", "nope"), ("x2", two["media_id"].as_str().unwrap())] {
        a.send(media_to(json!({"user": bob_id}), cid, id)).await;
        let e = a.expect("error").await;
        assert_eq!(e["code"], "forbidden", "{e}");
    }
    a.send(media_to(
        json!({"user": bob_id}),
        "ok",
        one["media_id"].as_str().unwrap(),
    ))
    .await;
    a.expect("ack").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_fetch_only_media_of_their_span_and_access_survives_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;
    let group = create_group(&s.url, &at, "team", &[&bob.id]).await;
    let members = format!("{}/v1/groups/{group}/members", s.url);
    let mut a = Client::connect(&s.url, &at).await;
    let mut c = Client::connect(&s.url, &ct).await;
    let mut send = async |n: u8| {
        let (_, up) = upload(&s.url, &at, "image/png", png_like(1000, n)).await;
        let id = up["media_id"].as_str().unwrap().to_owned();
        a.send(media_to(json!({"group": group}), &format!("g{n}"), &id))
            .await;
        a.expect("ack").await;
        id
    };
    let before = send(1).await;
    let (status, _) = call(
        reqwest::Method::POST,
        &members,
        &at,
        Some(json!({"user_id": carol.id})),
    )
    .await;
    assert_eq!(status, 204);
    let during = send(2).await;
    c.expect("msg").await;
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!("{members}/{}", bob.id),
        &at,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let after = send(3).await;
    c.expect("msg").await;

    let check = |url: String| {
        let (at, bt, ct) = (at.clone(), bt.clone(), ct.clone());
        let (before, during, after) = (before.clone(), during.clone(), after.clone());
        async move {
            let mut got = Vec::new();
            for t in [&at, &bt, &ct] {
                for m in [&before, &during, &after] {
                    got.push(status_of(&url, t, m).await);
                }
            }
            got
        }
    };
    let want = vec![
        200, 200, 200, // alice uploaded all three
        200, 200, 404, // bob: removed before the third
        404, 200, 200, // carol: added after the first
    ];
    assert_eq!(check(s.url.clone()).await, want);

    // Access is derived from the log: with the state store gone, the jobs
    // rebuild it and the same answers come back.
    s.stop().await;
    std::fs::remove_file(dir.path().join("state.redb")).unwrap();
    let s = Server::start(dir.path()).await;
    let url = s.url.clone();
    eventually("access rebuilt from the log", WAIT, || {
        let (check, want) = (check(url.clone()), want.clone());
        async move { (check.await == want).then_some(()) }
    })
    .await;
    s.stop().await;
}
