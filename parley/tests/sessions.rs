//! Sessions through the protocol: short access tokens renewed by refresh
//! tokens that work once, signing out (this device, or another one), and
//! device ids that must have been issued.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn refresh(url: &str, refresh_token: &Value) -> (u16, Value) {
    let body = json!({"refresh_token": refresh_token});
    post(&format!("{url}/v1/sessions/refresh"), body).await
}

fn token(v: &Value) -> &str {
    v["token"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_stops_this_devices_tokens_and_closes_its_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    let (status, phone) = sign_in(&s.url, "alice", None).await;
    assert_eq!(status, 200);
    assert_eq!(phone["expires_in"], 900, "15-minute access tokens");
    let (_, laptop) = sign_in(&s.url, "alice", None).await;
    let mut socket = Client::connect(&s.url, token(&phone)).await;

    let (status, _) = call(
        Method::DELETE,
        &format!("{}/v1/sessions/current", s.url),
        token(&phone),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(get(&s.url, token(&phone), "/v1/users/me").await.0, 401);
    assert_eq!(refresh(&s.url, &phone["refresh_token"]).await.0, 401);
    // Its socket closes...
    while socket.recv().await.is_some() {}
    // ...and the other device goes on.
    assert_eq!(get(&s.url, token(&laptop), "/v1/users/me").await.0, 200);
    // Signing in again on the same device id works, with new tokens.
    let device: u64 = phone["device_id"].as_str().unwrap().parse().unwrap();
    let (status, again) = sign_in(&s.url, "alice", Some(&device.to_string())).await;
    assert_eq!(status, 200);
    assert_eq!(get(&s.url, token(&again), "/v1/users/me").await.0, 200);
    assert_eq!(get(&s.url, token(&phone), "/v1/users/me").await.0, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_a_reused_one_signs_the_device_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    let (_, first) = sign_in(&s.url, "alice", None).await;
    let (status, second) = refresh(&s.url, &first["refresh_token"]).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["device_id"], first["device_id"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(get(&s.url, token(&second), "/v1/users/me").await.0, 200);
    // An access token is not a refresh token, nor the other way round.
    assert_eq!(refresh(&s.url, &second["token"]).await.0, 401);
    let (code, _) = get(
        &s.url,
        second["refresh_token"].as_str().unwrap(),
        "/v1/users/me",
    )
    .await;
    assert_eq!(code, 401);
    // The first refresh token again: someone holds a copy. The device is
    // signed out, the thief's and the owner's tokens alike.
    let (status, v) = refresh(&s.url, &first["refresh_token"]).await;
    assert_eq!((status, v["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(get(&s.url, token(&second), "/v1/users/me").await.0, 401);
    assert_eq!(refresh(&s.url, &second["refresh_token"]).await.0, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_and_revoked_and_only_issued_ids_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    register(&s.url, "bob").await;
    let (_, phone) = sign_in(&s.url, "alice", None).await;
    let (_, laptop) = sign_in(&s.url, "alice", None).await;
    let (code, list) = get(&s.url, token(&laptop), "/v1/devices").await;
    assert_eq!(code, 200);
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let current: Vec<bool> = devices
        .iter()
        .map(|d| d["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current, vec![false, true]);
    assert!(devices.iter().all(|d| d["signed_in"] == true));

    // The laptop revokes the lost phone.
    let phone_id = phone["device_id"].as_str().unwrap();
    let (code, _) = call(
        Method::DELETE,
        &format!("{}/v1/devices/{phone_id}", s.url),
        token(&laptop),
        None,
    )
    .await;
    assert_eq!(code, 204);
    assert_eq!(get(&s.url, token(&phone), "/v1/users/me").await.0, 401);
    let (_, list) = get(&s.url, token(&laptop), "/v1/devices").await;
    assert_eq!(list["devices"][0]["signed_in"], false);
    // Device ids are per user: Bob's own device 1 is no business of
    // Alice's, and he has no device 2 (Alice's laptop).
    let (_, bob) = sign_in(&s.url, "bob", None).await;
    let laptop_id = laptop["device_id"].as_str().unwrap();
    let (code, _) = call(
        Method::DELETE,
        &format!("{}/v1/devices/{laptop_id}", s.url),
        token(&bob),
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(get(&s.url, token(&laptop), "/v1/users/me").await.0, 200);

    // Device ids are the user's own, issued at sign-in.
    assert_eq!(sign_in(&s.url, "alice", Some("99")).await.0, 400);
    assert_eq!(sign_in(&s.url, "alice", Some("0")).await.0, 400);
    assert_eq!(sign_in(&s.url, "alice", Some("2")).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_jwt_secret_shorter_than_32_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.jwt_secret = Some("short-secret".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = parley::up(&cfg, listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("at least 32 bytes"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_ends_at_its_lifetime_however_often_it_is_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.session_max_secs = 2;
    let s = Server::start_with(cfg).await;
    register(&s.url, "alice").await;
    let (_, first) = sign_in(&s.url, "alice", None).await;
    let began = std::time::Instant::now();
    let (status, second) = refresh(&s.url, &first["refresh_token"]).await;
    assert_eq!(status, 200, "{second}");
    // The clock is what is awaited here: past the sign-in's lifetime
    // (whole seconds, so up to one more), the chain ends.
    tokio::time::sleep(std::time::Duration::from_secs(3).saturating_sub(began.elapsed())).await;
    let (status, v) = refresh(&s.url, &second["refresh_token"]).await;
    assert_eq!(status, 401, "{v}");
    // Signing in again starts a new lifetime.
    let (_, again) = sign_in(&s.url, "alice", None).await;
    assert_eq!(refresh(&s.url, &again["refresh_token"]).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_again_on_a_device_closes_the_replaced_sessions_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    let (_, first) = sign_in(&s.url, "alice", None).await;
    let device = first["device_id"].as_str().unwrap().to_owned();
    let mut old = Client::connect(&s.url, token(&first)).await;
    let (status, again) = sign_in(&s.url, "alice", Some(&device)).await;
    assert_eq!(status, 200);
    // The replaced sign-in's socket ends; the new one's works.
    while old.recv().await.is_some() {}
    let mut new = Client::connect(&s.url, token(&again)).await;
    new.send(json!({"type": "heartbeat", "active": true})).await;
    assert!(
        new.quiet("error", std::time::Duration::from_millis(200))
            .await
    );
    s.stop().await;
}
