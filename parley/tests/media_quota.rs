//! Resumable uploads cannot sidestep the daily quota: a session is charged
//! its declared size when it begins, refunded only if it expires
//! unfinished, and its chunk `PUT`s are rate-limited.

mod common;

use common::media::*;
use common::*;
use serde_json::{json, Value};

async fn begin(url: &str, token: &str, size: u64) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        &format!("{url}/v1/media/uploads"),
        token,
        Some(json!({"size": size})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_charged_at_begin_and_refunded_when_they_expire_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.media_bytes_per_day = 10_000;
    cfg.limits.media_session_ms = 1_500;
    let s = Server::start_with(cfg).await;
    register(&s.url, "alice").await;
    let (at, _) = login(&s.url, "alice", None).await;

    // 6,000 of 10,000 promised: a second session of 6,000 does not fit,
    // though not a byte has been sent yet.
    let (status, first) = begin(&s.url, &at, 6_000).await;
    assert_eq!(status, 201, "{first}");
    let (status, refused) = begin(&s.url, &at, 6_000).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["code"], "rate_limited");
    // Nor does a plain upload past what is left.
    let (status, _) = upload(&s.url, &at, "image/png", png_like(5_000, 1)).await;
    assert_eq!(status, 429);

    // The first session expires unfinished: its charge comes back.
    let expires_at = first["expires_at"].as_u64().unwrap();
    let id = first["upload_id"].as_str().unwrap().to_owned();
    eventually("the session expired", WAIT, || async {
        let (status, _) = get(&s.url, &at, &format!("/v1/media/uploads/{id}")).await;
        (status == 404).then_some(())
    })
    .await;
    assert!(parley_schemas::ids::now_ms() >= expires_at);
    let (status, second) = begin(&s.url, &at, 6_000).await;
    assert_eq!(status, 201, "{second}");

    // Finished, it stays charged: the rest of the day is 4,000.
    let id = second["upload_id"].as_str().unwrap();
    let file = png_like(6_000 - 16, 2);
    assert_eq!(file.len(), 6_000);
    let (status, done) = put_chunk(&s.url, &at, id, 0, &file, 6_000).await;
    assert_eq!(status, 201, "{done}");
    let (status, _) = begin(&s.url, &at, 4_001).await;
    assert_eq!(status, 429);
    let (status, _) = begin(&s.url, &at, 4_000).await;
    assert_eq!(status, 201);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_puts_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.media_chunks_per_min = 3;
    let s = Server::start_with(cfg).await;
    register(&s.url, "alice").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (status, session) = begin(&s.url, &at, 1_000).await;
    assert_eq!(status, 201);
    let id = session["upload_id"].as_str().unwrap();
    let bytes = png_like(1_000, 3);
    for i in 0..3 {
        let (status, v) = put_chunk(
            &s.url,
            &at,
            id,
            i * 100,
            &bytes[i * 100..(i + 1) * 100],
            1_000,
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, v) = put_chunk(&s.url, &at, id, 300, &bytes[300..400], 1_000).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    // Nothing of the refused chunk was kept.
    let (_, progress) = get(&s.url, &at, &format!("/v1/media/uploads/{id}")).await;
    assert_eq!(progress["offset"], 300);
    s.stop().await;
}
