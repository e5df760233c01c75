//! One signed-in user cannot grow the account log or the edge's memory
//! without bound: changes that append to the account log (settings,
//! contacts, groups, refreshes) share one rate per user, look-ups of other
//! users have theirs, and sign-ins with names no account can have are not
//! keyed.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_changes_and_refreshes_share_one_rate_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.account_changes_per_min = 1;
    cfg.limits.account_changes_burst = 3;
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (_, session) = sign_in(&s.url, "alice", None).await;
    let at = session["token"].as_str().unwrap().to_owned();
    let (bt, _) = login(&s.url, "bob", None).await;
    let cid = direct(&alice.id, &bob.id);
    let mute = format!("{}/v1/conversations/{cid}/mute", s.url);
    let pin = format!("{}/v1/conversations/{cid}/pin", s.url);
    assert_eq!(call(Method::PUT, &mute, &at, None).await.0, 204);
    assert_eq!(call(Method::PUT, &pin, &at, None).await.0, 204);
    let refresh = json!({"refresh_token": session["refresh_token"]});
    let (status, _) = post(&format!("{}/v1/sessions/refresh", s.url), refresh.clone()).await;
    assert_eq!(status, 200, "a refresh is one more change");
    // The burst is spent: the next change of any kind waits.
    let (status, v) = call(Method::DELETE, &mute, &at, None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    let privacy = format!("{}/v1/users/me/privacy", s.url);
    let (status, _) = call(
        Method::PUT,
        &privacy,
        &at,
        Some(json!({"presence": "nobody"})),
    )
    .await;
    assert_eq!(status, 429);
    // Reads are not changes, and another user has a rate of their own.
    assert_eq!(get(&s.url, &at, "/v1/push/settings").await.0, 200);
    assert_eq!(
        call(
            Method::PUT,
            &format!("{}/v1/conversations/{cid}/mute", s.url),
            &bt,
            None
        )
        .await
        .0,
        204
    );
    assert!(
        metric(
            &s.url,
            "parley_limit_hits_total",
            "limit=\"account_changes\""
        )
        .await
            >= 2.0
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_ups_of_other_users_are_limited_per_caller() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.lookups_per_min = 1;
    cfg.limits.lookups_burst = 4;
    let s = Server::start_with(cfg).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let profile = format!("/v1/users/{}", bob.id);
    let presence = format!("/v1/users/{}/presence", bob.id);
    for path in [&profile, &presence, &profile, &presence] {
        assert_eq!(get(&s.url, &at, path).await.0, 200, "{path}");
    }
    let (status, v) = get(&s.url, &at, &profile).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    assert_eq!(get(&s.url, &at, &presence).await.0, 429);
    // One's own profile is no look-up; Bob's rate is his own.
    assert_eq!(get(&s.url, &at, "/v1/users/me").await.0, 200);
    assert_eq!(get(&s.url, &bt, &profile).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_with_names_no_account_can_have_get_the_same_answer_and_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.sign_ins_per_min_per_account = 2;
    let s = Server::start_with(cfg).await;
    register(&s.url, "alice").await;
    let sessions = format!("{}/v1/sessions", s.url);
    let wrong = |name: &str| json!({"username": name, "password": "not-the-password"});
    let (status, v) = post(&sessions, wrong("alice")).await;
    assert_eq!(status, 401);
    for name in [
        "",
        "A",
        "x".repeat(10_000).as_str(),
        "Alice",
        "al ice",
        "ali\u{e7}e",
    ] {
        let (status, other) = post(&sessions, wrong(name)).await;
        assert_eq!(status, 401, "{name:.20}");
        assert_eq!(other, v, "the same answer as a wrong password");
    }
    // Those did not count against a real name's limit: alice's second
    // attempt is still allowed, her third is not.
    assert_eq!(post(&sessions, wrong("alice")).await.0, 401);
    assert_eq!(post(&sessions, wrong("alice")).await.0, 429);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_the_client_cannot_choose_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.trusted_proxy_hops = 1;
    cfg.limits.sign_ups_per_hour_per_ip = 1;
    let s = Server::start_with(cfg).await;
    // The proxy appends what it saw (203.0.113.5); whatever the client
    // wrote before it is the client's own word.
    let sign_up = |name: &'static str, header: &'static str| {
        let url = s.url.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{url}/v1/users"))
                .header("x-forwarded-for", header)
                .json(&json!({"username": name, "password": "password-1"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(sign_up("first", "9.9.9.9, 203.0.113.5").await, 201);
    assert_eq!(sign_up("second", "8.8.8.8, 203.0.113.5").await, 429);
    assert_eq!(sign_up("third", "203.0.113.6").await, 201, "another client");
    s.stop().await;
}
