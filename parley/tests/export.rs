//! Account export through the protocol: the archive holds the caller's
//! profile, contacts, blocks, settings, groups and the messages of their
//! chats as they see them (edits folded in, nothing they hid, nothing of
//! chats they are not in), and is rate-limited.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_what_the_caller_may_see_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    an_export_holds_what_the_caller_may_see_and_nothing_else_with(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_what_the_caller_may_see_and_nothing_else_on_redis_and_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, cfg) = on_redis_and_clickhouse(dir.path());
    an_export_holds_what_the_caller_may_see_and_nothing_else_with(cfg).await;
}

async fn an_export_holds_what_the_caller_may_see_and_nothing_else_with(cfg: parley::Config) {
    let s = Server::start_with(cfg).await;
    let ([alice, bob, carol], [at, bt, ct]) = three_signed_in(&s.url).await;
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    let mut c = Client::connect(&s.url, &ct).await;
    let first = a.say(&bob.id, "1", "hi bob").await["msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.say(&alice.id, "2", "hi alice").await;
    let edit = json!({"type": "send", "client_msg_id": "3", "to": {"user": bob.id},
        "body": {"edit": {"msg_id": first, "text": "hello bob"}}});
    a.send(edit).await;
    a.expect("ack").await;
    c.say(&bob.id, "4", "carol to bob, not alice's").await;
    let g = create_group(&s.url, &at, "team", &[&carol.id]).await;
    a.send(send_frame(&g, "5", "team news")).await;
    a.expect("ack").await;
    let hidden = c.say(&alice.id, "6", "carol to alice").await["msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hide = json!({"type": "send", "client_msg_id": "7", "to": {"user": carol.id},
        "body": {"delete": {"msg_id": hidden, "for_me": true}}});
    a.send(hide).await;
    a.expect("ack").await;
    assert_eq!(add_contact(&s.url, &at, &bob.id).await, 204);
    assert_eq!(block(&s.url, &at, &carol.id).await, 204);

    // History trails the log: wait until scrollback has it all.
    let with_bob = direct(&alice.id, &bob.id);
    eventually("the history has it all", WAIT, || async {
        let (_, list) = get(&s.url, &at, "/v1/conversations").await;
        let (_, page) = get(
            &s.url,
            &at,
            &format!("/v1/conversations/{with_bob}/messages"),
        )
        .await;
        let edited = page["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["edited"] == true));
        (list["conversations"].as_array().unwrap().len() == 3 && edited).then_some(())
    })
    .await;

    let r = reqwest::Client::new()
        .get(format!("{}/v1/users/me/export", s.url))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let archive: serde_json::Value = r.json().await.unwrap();
    assert_eq!(archive["profile"]["username"], "alice");
    assert_eq!(archive["contacts"][0]["user_id"], bob.id);
    assert_eq!(archive["blocked"][0]["user_id"], carol.id);
    assert_eq!(archive["groups"][0]["group_id"], g);
    assert_eq!(archive["truncated"], false);
    let text_of = |cid: &str| -> Vec<String> {
        archive["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["conversation_id"] == cid)
            .unwrap()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"]["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        text_of(&with_bob),
        ["hello bob", "hi alice"],
        "oldest first, edited"
    );
    assert_eq!(text_of(&format!("g:{g}")), ["team news"]);
    assert!(
        text_of(&direct(&alice.id, &carol.id)).is_empty(),
        "hidden by her"
    );
    let all = archive.to_string();
    assert!(!all.contains("not alice's"), "another's chat");
    assert!(!all.contains("carol to alice"), "hidden by her");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_limited_per_hour() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "alice").await;
    let (at, _) = login(&s.url, "alice", None).await;
    for _ in 0..4 {
        assert_eq!(get(&s.url, &at, "/v1/users/me/export").await.0, 200);
    }
    let (status, v) = get(&s.url, &at, "/v1/users/me/export").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    assert!(metric(&s.url, "parley_limit_hits_total", "exports").await >= 1.0);
    s.stop().await;
}
