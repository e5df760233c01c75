//! Group admins through the protocol: an admin promotes a member and the
//! new admin adds and demotes; members cannot; a group keeps an admin; the
//! roles come back the same from a state store rebuilt from the log.

mod common;

use common::*;
use serde_json::Value;

async fn set_admin(url: &str, token: &str, group: &str, user: &str, admin: bool) -> (u16, Value) {
    let method = if admin {
        reqwest::Method::PUT
    } else {
        reqwest::Method::DELETE
    };
    call(
        method,
        &format!("{url}/v1/groups/{group}/admins/{user}"),
        token,
        None,
    )
    .await
}

/// `user`'s admin flag in `info`.
fn is_admin(info: &Value, user: &str) -> bool {
    info["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["user_id"] == user && m["admin"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_promote_and_demote_and_a_group_keeps_one() {
    let dir = tempfile::tempdir().unwrap();
    admins_promote_and_demote_and_a_group_keeps_one_with(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_promote_and_demote_and_a_group_keeps_one_on_redis_and_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, cfg) = on_redis_and_clickhouse(dir.path());
    admins_promote_and_demote_and_a_group_keeps_one_with(cfg).await;
}

async fn admins_promote_and_demote_and_a_group_keeps_one_with(cfg: parley::Config) {
    let dir = cfg.data_dir.clone();
    let s = Server::start_with(cfg.clone()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let dave = register(&s.url, "dave").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let g = create_group(&s.url, &at, "team", &[&bob.id, &carol.id]).await;

    // A member may not promote; an admin may, and the answer shows it.
    let (status, e) = set_admin(&s.url, &bt, &g, &carol.id, true).await;
    assert_eq!((status, e["code"].as_str()), (403, Some("forbidden")));
    let (status, info) = set_admin(&s.url, &at, &g, &bob.id, true).await;
    assert_eq!(status, 200, "{info}");
    assert!(is_admin(&info, &bob.id) && is_admin(&info, &alice.id));
    // Promoting again changes nothing.
    assert_eq!(set_admin(&s.url, &at, &g, &bob.id, true).await.0, 200);

    // Bob, now an admin, adds Dave and demotes Alice, who can no longer add.
    let add = |token: String, user: String| {
        let url = s.url.clone();
        let g = g.clone();
        async move {
            call(
                reqwest::Method::POST,
                &format!("{url}/v1/groups/{g}/members"),
                &token,
                Some(serde_json::json!({"user_id": user})),
            )
            .await
        }
    };
    assert_eq!(add(bt.clone(), dave.id.clone()).await.0, 204);
    let (status, info) = set_admin(&s.url, &bt, &g, &alice.id, false).await;
    assert_eq!(status, 200);
    assert!(!is_admin(&info, &alice.id));
    let (status, e) = add(at.clone(), carol.id.clone()).await;
    assert_eq!((status, e["code"].as_str()), (403, Some("forbidden")));

    // The last admin cannot step down; a non-member is not found.
    let (status, e) = set_admin(&s.url, &bt, &g, &bob.id, false).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("conflict")), "{e}");
    let (status, e) = set_admin(&s.url, &bt, &g, "999999", true).await;
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
    assert_eq!(set_admin(&s.url, &bt, &g, "abc", true).await.0, 400);
    s.stop().await;

    // Derived from the log: the same roles after a rebuilt store (the
    // embedded one is wiped; Redis keeps its own).
    if cfg.state.is_none() {
        std::fs::remove_file(dir.join("state.redb")).unwrap();
    }
    let s = Server::start_with(cfg).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (_, info) = get(&s.url, &bt, &format!("/v1/groups/{g}")).await;
    assert!(is_admin(&info, &bob.id), "{info}");
    assert!(!is_admin(&info, &alice.id), "{info}");
    s.stop().await;
}
