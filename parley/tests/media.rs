//! Media through the protocol: upload, send, download by members only,
//! ranges, dedup, bad input, group spans, and access rebuilt from the log.

mod common;

use std::path::Path;

use common::*;
use reqwest::header;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Bytes that sniff as a PNG (a real image is not needed until thumbnails).
fn png_like(n: usize, seed: u8) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend((0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    b
}

async fn upload(url: &str, token: &str, mime: &str, body: Vec<u8>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/media"))
        .bearer_auth(token)
        .header(header::CONTENT_TYPE, mime)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn fetch(url: &str, token: &str, id: &str, range: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .get(format!("{url}/v1/media/{id}"))
        .bearer_auth(token);
    if let Some(range) = range {
        r = r.header(header::RANGE, range);
    }
    r.send().await.unwrap()
}

async fn status_of(url: &str, token: &str, id: &str) -> u16 {
    fetch(url, token, id, None).await.status().as_u16()
}

fn media_to(to: Value, cid: &str, media_id: &str) -> Value {
    json!({"type": "send", "client_msg_id": cid, "to": to,
           "body": {"media": {"media_id": media_id, "mime": "text/html", "caption": "look"}}})
}

/// Files under the media store's `dir` (`blobs`, `Tmp`).
fn files(data: &Path, dir: &str) -> usize {
    std::fs::read_dir(data.join("media").join(dir)).map_or(0, |d| d.count())
}

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

/// A real JPEG of `w` x `h` with an EXIF segment (GPS included) after SOI.
fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    let jpeg = out.into_inner();
    let payload = b"Exif\0\0MM\0*\0\0\0\x08\0\0GPSLatitude 52.52N secret-place";
    let mut app1 = vec![0xff, 0xe1];
    app1.extend(((payload.len() + 2) as u16).to_be_bytes());
    app1.extend_from_slice(payload);
    [&jpeg[..2], &app1[..], &jpeg[2..]].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_get_a_metadata_free_thumbnail_and_their_size_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let original = jpeg_with_exif(1200, 900);
    assert!(original.windows(11).any(|w| w == b"GPSLatitude"));
    let (status, up) = upload(&s.url, &at, "image/jpeg", original.clone()).await;
    assert_eq!(status, 201, "{up}");
    let id = up["media_id"].as_str().unwrap().to_owned();

    let thumb_url = format!("{}/v1/media/{id}/thumbnail", s.url);
    let thumb = eventually("a thumbnail", WAIT, || {
        let (url, at) = (thumb_url.clone(), at.clone());
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(at)
                .send()
                .await
                .unwrap();
            (r.status() == 200).then_some(r)
        }
    })
    .await;
    assert_eq!(thumb.headers()[header::CONTENT_TYPE], "image/jpeg");
    let thumb = thumb.bytes().await.unwrap();
    let t = image::load_from_memory(&thumb).unwrap();
    assert_eq!((t.width(), t.height()), (320, 240));
    assert!(!thumb.windows(4).any(|w| w == b"Exif"), "metadata left in");
    assert!(!thumb.windows(11).any(|w| w == b"GPSLatitude"));
    // The original is served as uploaded, byte for byte.
    let r = fetch(&s.url, &at, &id, None).await;
    assert_eq!(r.bytes().await.unwrap(), original);

    // Sent now, the message says how big the image is and that a
    // thumbnail is there; the recipient may fetch it, a stranger not.
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    a.send(media_to(json!({"user": bob.id}), "img", &id)).await;
    a.expect("ack").await;
    let msg = b.expect("msg").await;
    let media = &msg["body"]["media"];
    assert_eq!(
        (&media["width"], &media["height"], &media["thumbnail"]),
        (&json!(1200), &json!(900), &json!(true))
    );
    let (status, _) = get(&s.url, &bt, &format!("/v1/media/{id}/thumbnail")).await;
    assert_eq!(status, 200);
    register(&s.url, "eve").await;
    let (et, _) = login(&s.url, "eve", None).await;
    let (status, _) = get(&s.url, &et, &format!("/v1/media/{id}/thumbnail")).await;
    assert_eq!(status, 404);

    // A PNG (generated) gets one too.
    let png = {
        let img =
            image::RgbaImage::from_fn(500, 1000, |x, y| image::Rgba([x as u8, y as u8, 1, 200]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let (_, up) = upload(&s.url, &at, "image/png", png).await;
    let png_thumb = format!("/v1/media/{}/thumbnail", up["media_id"].as_str().unwrap());
    let thumb = eventually("the PNG's thumbnail", WAIT, || {
        let (url, at, path) = (s.url.clone(), at.clone(), png_thumb.clone());
        async move {
            let r = reqwest::Client::new()
                .get(format!("{url}{path}"))
                .bearer_auth(at)
                .send()
                .await
                .unwrap();
            if r.status() != 200 {
                return None;
            }
            Some(r.bytes().await.unwrap())
        }
    })
    .await;
    let t = image::load_from_memory(&thumb).unwrap();
    assert_eq!((t.width(), t.height()), (160, 320));

    // A corrupt image is stored (it is the sender's file) but gets no
    // thumbnail, and the job goes on to the next one.
    // Metrics are per process, and the other tests of this file upload
    // image-like bytes too: count the change.
    let failed = || metric(&s.url, "parley_thumbnails_failed_total", "");
    let failed_before = failed().await;
    let mut broken = vec![0xff, 0xd8, 0xff, 0xe0];
    broken.extend([0x42; 500]);
    let (_, bad) = upload(&s.url, &at, "image/jpeg", broken).await;
    let (_, good) = upload(&s.url, &at, "image/jpeg", jpeg_with_exif(100, 50)).await;
    let good_thumb = format!("/v1/media/{}/thumbnail", good["media_id"].as_str().unwrap());
    eventually("the next image's thumbnail", WAIT, || {
        let (url, at, path) = (s.url.clone(), at.clone(), good_thumb.clone());
        async move { (get(&url, &at, &path).await.0 == 200).then_some(()) }
    })
    .await;
    let bad_thumb = format!("/v1/media/{}/thumbnail", bad["media_id"].as_str().unwrap());
    assert_eq!(get(&s.url, &at, &bad_thumb).await.0, 404);
    assert_eq!(failed().await - failed_before, 1.0);
    s.stop().await;
}

async fn put_chunk(
    url: &str,
    token: &str,
    id: &str,
    start: usize,
    bytes: &[u8],
    total: usize,
) -> (u16, Value) {
    let end = start + bytes.len() - 1;
    let r = reqwest::Client::new()
        .put(format!("{url}/v1/media/uploads/{id}"))
        .bearer_auth(token)
        .header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{total}"),
        )
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

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

    let (status, up) = call(
        reqwest::Method::POST,
        &format!("{}/v1/media/uploads", s.url),
        &at,
        Some(json!({"size": total, "mime": "image/png"})),
    )
    .await;
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
    let (_, st) = call(
        reqwest::Method::POST,
        &format!("{}/v1/media/uploads", s.url),
        &at,
        Some(json!({"size": big.len()})),
    )
    .await;
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

/// Every file under the media store's `dir`, however deep.
fn deep_files(data: &Path, dir: &str) -> usize {
    fn count(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    count(&data.join("media").join(dir))
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
    let swept = |what: &'static str| {
        let url = s.url.clone();
        async move {
            metric(
                &url,
                "parley_media_deleted_total",
                &format!("what=\"{what}\""),
            )
            .await
        }
    };
    let (uploads0, blobs0, sessions0) = (
        swept("upload").await,
        swept("blob").await,
        swept("session").await,
    );

    // `kept` is sent; `dup` is the same bytes, never sent; `lone` is other
    // bytes, never sent; and a resumable upload is begun and left.
    let (_, kept) = upload(&s.url, &at, "image/png", png_like(5_000, 1)).await;
    let (_, dup) = upload(&s.url, &bt, "image/png", png_like(5_000, 1)).await;
    let (_, lone) = upload(&s.url, &at, "image/png", png_like(5_000, 2)).await;
    let (status, session) = call(
        reqwest::Method::POST,
        &format!("{}/v1/media/uploads", s.url),
        &at,
        Some(json!({"size": 10_000})),
    )
    .await;
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

    eventually(
        "the unsent uploads, the free blob and the session swept",
        WAIT,
        || async {
            let done = swept("upload").await - uploads0 >= 2.0
                && swept("blob").await - blobs0 >= 1.0
                && swept("session").await - sessions0 >= 1.0;
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
    let session_path = format!(
        "/v1/media/uploads/{}",
        session["upload_id"].as_str().unwrap()
    );
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
