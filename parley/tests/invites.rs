//! Group invite links through the protocol: an admin creates one with a
//! use limit, someone joins with it as a normal member, it runs out, it
//! can be revoked, bad tokens are refused, and all of it survives a
//! rebuild of the state from the log (embedded, and on Redis).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn invite(url: &str, token: &str, group: &str, body: Value) -> (u16, Value) {
    call(
        Method::POST,
        &format!("{url}/v1/groups/{group}/invites"),
        token,
        Some(body),
    )
    .await
}

async fn join(url: &str, token: &str, invite: &str) -> (u16, Value) {
    call(
        Method::POST,
        &format!("{url}/v1/invites/{invite}"),
        token,
        None,
    )
    .await
}

/// Alice's group with Bob; Carol joins by a one-use link, Dave cannot;
/// a revoked link admits no one. The server is stopped after; the group.
async fn invite_then_stop(cfg: parley::Config) -> String {
    let s = Server::start_with(cfg).await;
    let ([_, bob, carol], [at, bt, ct]) = three_signed_in(&s.url).await;
    register(&s.url, "dave").await;
    let (dt, _) = login(&s.url, "dave", None).await;
    let g = create_group(&s.url, &at, "club", &[&bob.id]).await;

    let (status, v) = invite(&s.url, &bt, &g, json!({})).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    for bad in [
        json!({"max_uses": 0}),
        json!({"expires_in_s": 0}),
        json!({"max_uses": "x"}),
    ] {
        let (status, v) = invite(&s.url, &at, &g, bad).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("bad_request")),
            "{v}"
        );
    }
    let (status, once) = invite(
        &s.url,
        &at,
        &g,
        json!({"max_uses": 1, "expires_in_s": 3600}),
    )
    .await;
    assert_eq!(status, 201, "{once}");
    let token = once["token"].as_str().unwrap();
    assert!(token.starts_with(&format!("{g}.")), "{once}");

    // Carol joins, and is a member like any other from now on.
    let mut c = Client::connect(&s.url, &ct).await;
    let (status, info) = join(&s.url, &ct, token).await;
    assert_eq!(status, 200, "{info}");
    let members: Vec<&str> = info["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert!(members.contains(&carol.id.as_str()), "{info}");
    let mut a = Client::connect(&s.url, &at).await;
    a.send(send_frame(&g, "welcome", "welcome carol")).await;
    a.expect("ack").await;
    assert_eq!(c.expect("msg").await["body"]["text"], "welcome carol");
    let (status, v) = join(&s.url, &ct, token).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("conflict")), "{v}");

    // Used up; then a revoked one; then tokens that are no invite.
    let (status, v) = join(&s.url, &dt, token).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (_, open) = invite(&s.url, &at, &g, json!({})).await;
    let id = open["invite_id"].as_str().unwrap();
    let revoke = format!("{}/v1/groups/{g}/invites/{id}", s.url);
    assert_eq!(call(Method::DELETE, &revoke, &bt, None).await.0, 403);
    assert_eq!(call(Method::DELETE, &revoke, &at, None).await.0, 204);
    assert_eq!(call(Method::DELETE, &revoke, &at, None).await.0, 404);
    let (status, v) = join(&s.url, &dt, open["token"].as_str().unwrap()).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    for (bad, code) in [
        ("garbage", "bad_request"),
        ("12345.secret", "not_found"),
        (&format!("{g}.wrong")[..], "not_found"),
    ] {
        let (status, v) = join(&s.url, &dt, bad).await;
        assert_eq!(v["code"], code, "{bad}: {status} {v}");
    }
    let (status, v) = get(&s.url, &dt, &format!("/v1/groups/{g}")).await;
    assert_eq!(status, 403, "Dave never got in: {v}");
    // One more, kept: the used-up one made room for it.
    let (status, kept) = invite(&s.url, &at, &g, json!({"max_uses": 5})).await;
    assert_eq!(status, 201, "{kept}");
    let list = listed(&s.url, &at, &g).await;
    assert_eq!(list["invites"].as_array().unwrap().len(), 1, "{list}");
    s.stop().await;
    g
}

/// The invites as Alice lists them, once the state has them.
async fn listed(url: &str, at: &str, g: &str) -> Value {
    let (status, v) = get(url, at, &format!("/v1/groups/{g}/invites")).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn still_there(cfg: parley::Config, g: &str) {
    let s = Server::start_with(cfg).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let list = eventually("the invites rebuilt", WAIT, || async {
        let v = listed(&s.url, &at, g).await;
        (v["invites"].as_array().unwrap().len() == 1).then_some(v)
    })
    .await;
    let i = &list["invites"][0];
    assert_eq!(
        (i["uses"].as_u64(), i["max_uses"].as_u64()),
        (Some(0), Some(5)),
        "{list}"
    );
    assert!(i.get("token").is_none(), "a token is shown once: {list}");
    assert_eq!(
        get(&s.url, &bt, &format!("/v1/groups/{g}/invites")).await.0,
        403
    );
    let (_, info) = get(&s.url, &at, &format!("/v1/groups/{g}")).await;
    assert_eq!(info["members"].as_array().unwrap().len(), 3, "{info}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_links_admit_whom_they_should_and_survive_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let g = invite_then_stop(config(dir.path())).await;
    std::fs::remove_file(dir.path().join("state.redb")).unwrap();
    still_there(config(dir.path()), &g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_links_on_redis_and_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, on) = on_redis_and_clickhouse(dir.path());
    let cfg = || on.clone();
    let g = invite_then_stop(cfg()).await;
    still_there(cfg(), &g).await;
}
