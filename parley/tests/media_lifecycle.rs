//! Uploads over time: resumable uploads that survive a cut connection,
//! uploads never sent and blobs no one holds deleted, and the same on S3.

mod common;

use common::media::*;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_upload_survives_a_cut_connection() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    register(&s.url, "bob").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let file = png_like(3_000_000, 5);
    let total = file.len();

    let (status, up) = begin_upload(&s.url, &at, json!({"size": total, "mime": "image/png"})).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(
        (up["offset"].as_u64(), up["size"].as_u64()),
        (Some(0), Some(total as u64))
    );
    let id = up["upload_id"].as_str().unwrap().to_owned();
    let progress = format!("/v1/media/uploads/{id}");

    // The first megabyte.
    let (status, st) = put_chunk(&s.url, &at, &id, 0, &file[..1_000_000], total).await;
    assert_eq!(
        (status, st["offset"].as_u64()),
        (200, Some(1_000_000)),
        "{st}"
    );

    // The next chunk is cut off half-way: a raw request that says a
    // megabyte is coming, sends half, and closes.
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /v1/media/uploads/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {at}\r\n\
         Content-Range: bytes 1000000-1999999/{total}\r\nContent-Length: 1000000\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&file[1_000_000..1_500_000]).await.unwrap();
    tcp.shutdown().await.unwrap();
    drop(tcp);
    // What arrived is kept: the upload resumes from 1.5 MB, not from zero.
    let at_offset = eventually("the cut chunk kept", WAIT, || {
        let (url, at, path) = (s.url.clone(), at.clone(), progress.clone());
        async move {
            let (_, st) = get(&url, &at, &path).await;
            let off = st["offset"].as_u64()?;
            (off > 1_000_000).then_some(off)
        }
    })
    .await;
    assert_eq!(at_offset, 1_500_000);

    // Only the owner sees the session; a chunk at the wrong offset is a
    // conflict; one past the end is too large.
    assert_eq!(get(&s.url, &bt, &progress).await.0, 404);
    let (status, e) = put_chunk(&s.url, &at, &id, 0, &file[..10], total).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("conflict")));
    let mut past = file[1_500_000..].to_vec();
    past.push(0);
    let (status, _) = put_chunk(&s.url, &at, &id, 1_500_000, &past, total).await;
    assert_eq!(status, 413);
    assert_eq!(get(&s.url, &at, &progress).await.1["offset"], 1_500_000);

    // The rest: the upload is stored whole, like a plain one.
    let (status, done) = put_chunk(&s.url, &at, &id, 1_500_000, &file[1_500_000..], total).await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["sha256"], format!("{:x}", Sha256::digest(&file)));
    assert_eq!(
        (done["size"].as_u64(), done["mime"].as_str()),
        (Some(total as u64), Some("image/png"))
    );
    let r = fetch(&s.url, &at, done["media_id"].as_str().unwrap(), None).await;
    assert!(r.bytes().await.unwrap() == file);
    // The session and its parts are gone.
    assert_eq!(get(&s.url, &at, &progress).await.0, 404);
    assert_eq!(files(dir.path(), "uploads"), 0);
    s.stop().await;
}

/// The same protocol on S3 (a private moto server): upload, thumbnail,
/// send, ranged download, resumable upload.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_on_s3_behaves_the_same() {
    let s3 = parley_engines::contract::servers::S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.media = Some(s3.url.clone());
    let s = Server::start_with(cfg).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let image = jpeg_with_exif(700, 350);
    let (status, up) = upload(&s.url, &at, "image/jpeg", image.clone()).await;
    assert_eq!(status, 201, "{up}");
    let id = up["media_id"].as_str().unwrap().to_owned();
    let thumb = format!("/v1/media/{id}/thumbnail");
    eventually("a thumbnail in S3", WAIT, || {
        let (url, at, path) = (s.url.clone(), at.clone(), thumb.clone());
        async move { (get(&url, &at, &path).await.0 == 200).then_some(()) }
    })
    .await;
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    a.send(media_to(json!({"user": bob.id}), "s3", &id)).await;
    a.expect("ack").await;
    assert_eq!(b.expect("msg").await["body"]["media"]["width"], 700);
    let r = fetch(&s.url, &bt, &id, Some("bytes=100-199")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), image[100..200]);
    assert!(fetch(&s.url, &bt, &id, None).await.bytes().await.unwrap() == image);
    assert_eq!(
        status_of(&s.url, &bt, "ffffffffffffffffffffffffffffffff").await,
        404
    );

    let big = png_like(6_000_000, 3);
    let (_, st) = begin_upload(&s.url, &at, json!({"size": big.len()})).await;
    let up_id = st["upload_id"].as_str().unwrap();
    let (status, _) = put_chunk(&s.url, &at, up_id, 0, &big[..5_500_000], big.len()).await;
    assert_eq!(status, 200);
    let (status, done) =
        put_chunk(&s.url, &at, up_id, 5_500_000, &big[5_500_000..], big.len()).await;
    assert_eq!(status, 201, "{done}");
    let r = fetch(&s.url, &at, done["media_id"].as_str().unwrap(), None).await;
    assert!(r.bytes().await.unwrap() == big);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_never_sent_and_blobs_no_one_holds_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // Lifetimes of a second, swept every 100 ms, so the test sees a day.
    cfg.limits.media_unsent_ms = 1_000;
    cfg.limits.media_session_ms = 1_000;
    cfg.media_blob_grace_ms = 0;
    cfg.media_sweep_every_ms = 100;
    let s = Server::start_with(cfg).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    // `kept` is sent; `dup` is the same bytes, never sent; `lone` is other
    // bytes, never sent; and a resumable upload is begun and left.
    let (_, kept) = upload(&s.url, &at, "image/png", png_like(5_000, 1)).await;
    let (_, dup) = upload(&s.url, &bt, "image/png", png_like(5_000, 1)).await;
    let (_, lone) = upload(&s.url, &at, "image/png", png_like(5_000, 2)).await;
    let (status, session) = begin_upload(&s.url, &at, json!({"size": 10_000})).await;
    assert_eq!(status, 201);
    let (status, _) = put_chunk(
        &s.url,
        &at,
        session["upload_id"].as_str().unwrap(),
        0,
        &png_like(100, 3),
        10_000,
    )
    .await;
    assert_eq!(status, 200);
    let id = |v: &Value| v["media_id"].as_str().unwrap().to_owned();
    let mut a = Client::connect(&s.url, &at).await;
    a.send(media_to(json!({"user": bob.id}), "keep", &id(&kept)))
        .await;
    a.expect("ack").await;
    assert_eq!(files(dir.path(), "blobs"), 2);

    let session_path = format!(
        "/v1/media/uploads/{}",
        session["upload_id"].as_str().unwrap()
    );
    // This server's own state, not the process-wide counters: the other
    // tests of this binary sweep their own servers' uploads meanwhile.
    eventually(
        "the unsent uploads, the free blob and the session swept",
        WAIT,
        || async {
            let done = status_of(&s.url, &bt, &id(&dup)).await == 404
                && status_of(&s.url, &at, &id(&lone)).await == 404
                && get(&s.url, &at, &session_path).await.0 == 404
                && files(dir.path(), "blobs") == 1
                && deep_files(dir.path(), "uploads") == 0;
            done.then_some(())
        },
    )
    .await;
    // Sent: still there for both. Never sent: gone, even for the uploader.
    assert_eq!(status_of(&s.url, &at, &id(&kept)).await, 200);
    assert_eq!(status_of(&s.url, &bt, &id(&kept)).await, 200);
    assert_eq!(status_of(&s.url, &bt, &id(&dup)).await, 404);
    assert_eq!(status_of(&s.url, &at, &id(&lone)).await, 404);
    // The shared blob stays (the sent upload holds it); the other is gone.
    assert_eq!(files(dir.path(), "blobs"), 1);
    assert_eq!(deep_files(dir.path(), "uploads"), 0);
    assert_eq!(get(&s.url, &at, &session_path).await.0, 404);
    // An unsent upload may not be sent once deleted.
    a.send(media_to(json!({"user": bob.id}), "late", &id(&lone)))
        .await;
    assert_eq!(a.expect("error").await["code"], "forbidden");

    // The same bytes uploaded again after their blob went: stored anew.
    let (status, again) = upload(&s.url, &at, "image/png", png_like(5_000, 2)).await;
    assert_eq!(status, 201);
    let r = fetch(&s.url, &at, &id(&again), None).await;
    assert!(r.bytes().await.unwrap() == png_like(5_000, 2));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_only_a_deleted_message_carried_is_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.media_unsent_ms = 1_000;
    cfg.media_blob_grace_ms = 0;
    cfg.media_sweep_every_ms = 100;
    let s = Server::start_with(cfg).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;
    let id = |v: &Value| v["media_id"].as_str().unwrap().to_owned();
    let (_, photo) = upload(&s.url, &at, "image/png", png_like(5_000, 4)).await;
    let (_, both) = upload(&s.url, &at, "image/png", png_like(5_000, 5)).await;
    let mut a = Client::connect(&s.url, &at).await;
    let sent = |to: &User, cid: &str, media: &str| media_to(json!({"user": to.id}), cid, media);
    a.send(sent(&bob, "1", &id(&photo))).await;
    let to_bob = a.expect("ack").await["msg_id"].as_str().unwrap().to_owned();
    // `both` goes to Bob and to Carol; only Bob's message is deleted.
    a.send(sent(&bob, "2", &id(&both))).await;
    let both_to_bob = a.expect("ack").await["msg_id"].as_str().unwrap().to_owned();
    a.send(sent(&carol, "3", &id(&both))).await;
    a.expect("ack").await;
    assert_eq!(status_of(&s.url, &bt, &id(&photo)).await, 200);
    assert_eq!(status_of(&s.url, &ct, &id(&both)).await, 200);

    for (cid, msg_id) in [("4", &to_bob), ("5", &both_to_bob)] {
        let delete = json!({"type": "send", "client_msg_id": cid, "to": {"user": bob.id},
            "body": {"delete": {"msg_id": msg_id}}});
        a.send(delete).await;
        a.expect("ack").await;
    }
    // Bob can no longer fetch either; the photo no message uses is swept,
    // bytes and all; what Carol still has stays.
    eventually("the photo swept", WAIT, || async {
        (status_of(&s.url, &at, &id(&photo)).await == 404).then_some(())
    })
    .await;
    assert_eq!(status_of(&s.url, &bt, &id(&photo)).await, 404);
    assert_eq!(status_of(&s.url, &bt, &id(&both)).await, 404);
    assert_eq!(status_of(&s.url, &ct, &id(&both)).await, 200);
    assert_eq!(status_of(&s.url, &at, &id(&both)).await, 200);
    eventually("the photo's bytes deleted", WAIT, || async {
        (files(dir.path(), "blobs") == 1).then_some(())
    })
    .await;
    s.stop().await;
}
