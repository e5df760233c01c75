//! Two chunks raced to one offset of a resumable upload never make a file
//! of the wrong bytes: the chunk whose part did not become the upload's is
//! refused (`conflict`), the client resumes from where the server is, and
//! the stored file is the one sent.

mod common;

use common::media::*;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A chunk `PUT` over a connection of its own, sent in the steps a race
/// needs: the headers (with `Expect: 100-continue`), and the body once the
/// server has judged them and asks for it.
struct RawPut {
    tcp: TcpStream,
}

/// Reads one response head from `tcp` (the bytes after it, if any, too).
async fn head(tcp: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl RawPut {
    /// Sends the headers of bytes `start..start + len` of a `total`-byte
    /// upload, and waits until the server has checked them and reads on.
    async fn start(
        url: &str,
        token: &str,
        id: &str,
        start: usize,
        len: usize,
        total: usize,
    ) -> Self {
        let addr = url.trim_start_matches("http://");
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let end = start + len - 1;
        let headers = format!(
            "PUT /v1/media/uploads/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Range: bytes {start}-{end}/{total}\r\nContent-Length: {len}\r\n\
             Expect: 100-continue\r\n\r\n"
        );
        tcp.write_all(headers.as_bytes()).await.unwrap();
        let (interim, _) = head(&mut tcp).await;
        assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
        RawPut { tcp }
    }

    /// The body, then the answer: status and JSON.
    async fn send(mut self, body: &[u8]) -> (u16, Value) {
        self.tcp.write_all(body).await.unwrap();
        let (head, mut rest) = head(&mut self.tcp).await;
        let status = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("a content-length");
        while rest.len() < length {
            let mut chunk = [0u8; 4096];
            let n = self.tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            rest.extend_from_slice(&chunk[..n]);
        }
        (status, serde_json::from_slice(&rest[..length]).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_chunks_raced_to_one_offset_never_make_a_wrong_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let file = png_like(100_000, 9);
    let total = file.len();
    let (status, up) = begin_upload(&s.url, &at, json!({"size": total, "mime": "image/png"})).await;
    assert_eq!(status, 201, "{up}");
    let id = up["upload_id"].as_str().unwrap().to_owned();

    // A client retries a slow first chunk (A) with a shorter one (B),
    // and A still arrives. The store keeps the part of B, committed first
    // (the embedded blob store keeps a key's first blob): A is refused and
    // says where the upload is. Before, A answered 200 at 60,000 though
    // its bytes were dropped.
    let a = RawPut::start(&s.url, &at, &id, 0, 60_000, total).await;
    let (status, b) = put_chunk(&s.url, &at, &id, 0, &file[..30_000], total).await;
    assert_eq!((status, b["offset"].as_u64()), (200, Some(30_000)), "{b}");
    let (status, a) = a.send(&file[..60_000]).await;
    assert_eq!((status, a["code"].as_str()), (409, Some("conflict")), "{a}");
    let progress = format!("/v1/media/uploads/{id}");
    assert_eq!(get(&s.url, &at, &progress).await.1["offset"], 30_000);

    // The same with the last chunk (C) raced by a short one (D): before,
    // C found its bytes "all in" and stored a 40,000-byte file as done.
    let c = RawPut::start(&s.url, &at, &id, 30_000, 70_000, total).await;
    let (status, d) = put_chunk(&s.url, &at, &id, 30_000, &file[30_000..40_000], total).await;
    assert_eq!((status, d["offset"].as_u64()), (200, Some(40_000)), "{d}");
    let (status, c) = c.send(&file[30_000..]).await;
    assert_eq!((status, c["code"].as_str()), (409, Some("conflict")), "{c}");

    // The client asks where the upload is and sends the rest from there.
    let (_, st) = get(&s.url, &at, &progress).await;
    assert_eq!(st["offset"], 40_000, "{st}");
    let (status, done) = put_chunk(&s.url, &at, &id, 40_000, &file[40_000..], total).await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["size"].as_u64(), Some(total as u64));
    assert_eq!(done["sha256"], format!("{:x}", Sha256::digest(&file)));
    let r = fetch(&s.url, &at, done["media_id"].as_str().unwrap(), None).await;
    assert!(r.bytes().await.unwrap() == file);
    // The session and its parts are gone.
    assert_eq!(files(dir.path(), "uploads"), 0);
    s.stop().await;
}
