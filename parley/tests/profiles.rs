//! Profiles through the protocol: read, change, limits, and a restart that
//! derives them again from the log.

mod common;

use common::media;
use common::*;
use serde_json::{json, Value};

async fn patch(url: &str, token: &str, body: Value) -> (u16, Value) {
    let me = format!("{url}/v1/users/me");
    call(reqwest::Method::PATCH, &me, token, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_change_by_log_events_and_refuse_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;

    let (status, p) = get(&s.url, &bt, &format!("/v1/users/{}", alice.id)).await;
    assert_eq!(status, 200);
    assert_eq!(
        p,
        json!({"user_id": alice.id, "username": "alice", "display_name": "alice", "about": ""})
    );

    // An avatar is a picture the user uploaded; before it is one, no one
    // else may fetch it.
    let (_, up) = media::upload(&s.url, &at, "image/png", media::png_like(500, 7)).await;
    let avatar = up["media_id"].as_str().unwrap().to_owned();
    assert_eq!(media::status_of(&s.url, &bt, &avatar).await, 404);
    let (status, p) = patch(
        &s.url,
        &at,
        json!({"display_name": "Alice A.", "about": "at work", "avatar_media_id": avatar}),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    let want = json!({"user_id": alice.id, "username": "alice", "display_name": "Alice A.",
                      "about": "at work", "avatar_media_id": avatar});
    assert_eq!(media::status_of(&s.url, &bt, &avatar).await, 200);
    // Someone else's upload, or an id that is none, cannot be an avatar.
    let (_, theirs) = media::upload(&s.url, &bt, "image/png", media::png_like(500, 8)).await;
    for other in [
        theirs["media_id"].as_str().unwrap(),
        "0123456789abcdef0123456789abcdef",
    ] {
        let (status, e) = patch(&s.url, &at, json!({"avatar_media_id": other})).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (403, Some("forbidden")),
            "{e}"
        );
    }
    assert_eq!(p, want);
    // Others read it at once; `me` is the caller.
    assert_eq!(
        get(&s.url, &bt, &format!("/v1/users/{}", alice.id)).await.1,
        want
    );
    assert_eq!(get(&s.url, &at, "/v1/users/me").await.1, want);
    // A partial change keeps the rest; an empty avatar removes it (and
    // with it the picture's visibility).
    let (_, p) = patch(&s.url, &at, json!({"about": "free", "avatar_media_id": ""})).await;
    assert_eq!(media::status_of(&s.url, &bt, &avatar).await, 404);
    assert_eq!(
        p,
        json!({"user_id": alice.id, "username": "alice", "display_name": "Alice A.", "about": "free"})
    );

    for bad in [
        json!({}),
        json!({"display_name": ""}),
        json!({"display_name": "   "}),
        json!({"display_name": "x".repeat(65)}),
        json!({"display_name": "tab\there"}),
        json!({"about": "y".repeat(141)}),
        json!({"avatar_media_id": "../etc/passwd"}),
        json!({"display_name": 7}),
    ] {
        let (status, e) = patch(&s.url, &at, bad.clone()).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {e}"
        );
    }
    let (status, e) = get(&s.url, &bt, "/v1/users/999999").await;
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
    let (status, _) = get(&s.url, &bt, "/v1/users/abc").await;
    assert_eq!(status, 400);
    let _ = bob;
    s.stop().await;

    // The store is derived from the log: wipe it, restart, and the
    // accounts job brings the profile back.
    std::fs::remove_file(dir.path().join("state.redb")).unwrap();
    let s = Server::start(dir.path()).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (_, p) = get(&s.url, &bt, &format!("/v1/users/{}", alice.id)).await;
    assert_eq!(
        p,
        json!({"user_id": alice.id, "username": "alice", "display_name": "Alice A.", "about": "free"})
    );
    s.stop().await;
}
