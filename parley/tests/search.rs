//! Search in one's own history through the protocol: words anywhere in
//! the caller's chats, newest first and paged, only what the caller may
//! see (not other people's chats, not a group from before joining, not
//! what they hid, not encrypted bodies), and bad queries refused. On the
//! embedded history and on ClickHouse.

mod common;

use common::*;
use parley_engines::contract::servers::ClickHouseServer;
use serde_json::{json, Value};

async fn search(url: &str, token: &str, query: &str) -> (u16, Value) {
    get(url, token, &format!("/v1/search?{query}")).await
}

fn texts(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn finds_what_it_should(cfg: parley::Config) {
    let s = Server::start_with(cfg).await;
    let ([alice, bob, carol], [at, bt, ct]) = three_signed_in(&s.url).await;
    register(&s.url, "dave").await;
    let (dt, _) = login(&s.url, "dave", None).await;
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    a.say(&bob.id, "1", "Pizza tonight?").await;
    b.say(&alice.id, "2", "pizza sounds good").await;
    a.say(&bob.id, "3", "or sushi").await;
    let mut c = Client::connect(&s.url, &ct).await;
    c.say(&bob.id, "4", "pizza secret between carol and bob")
        .await;
    let g = create_group(&s.url, &at, "food", &[&bob.id]).await;
    a.send(send_frame(&g, "5", "group pizza before dave")).await;
    a.expect("ack").await;
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("{}/v1/groups/{g}/members", s.url),
        &at,
        Some(json!({"user_id": register_id(&s.url, &at, "dave").await})),
    )
    .await;
    assert_eq!(status, 204);
    a.send(send_frame(&g, "6", "group pizza after dave")).await;
    a.expect("ack").await;
    let e2e = json!({"type": "send", "client_msg_id": "7", "to": {"user": bob.id},
        "body": {"e2e": {"pizza": "ciphertext"}}});
    a.send(e2e).await;
    a.expect("ack").await;

    // Alice: her 1:1 and the group, newest first, any case.
    let found = eventually("the history has it all", WAIT, || async {
        let (status, v) = search(&s.url, &at, "q=PIZZA").await;
        assert_eq!(status, 200, "{v}");
        (texts(&v).len() == 4).then_some(v)
    })
    .await;
    assert_eq!(
        texts(&found),
        [
            "group pizza after dave",
            "group pizza before dave",
            "pizza sounds good",
            "Pizza tonight?"
        ]
    );
    // Paged by the last one's id; in one conversation; every word.
    let third = found["messages"][1]["msg_id"].as_str().unwrap();
    let (_, next) = search(&s.url, &at, &format!("q=pizza&before={third}&limit=1")).await;
    assert_eq!(texts(&next), ["pizza sounds good"]);
    let cid = direct(&alice.id, &bob.id);
    let (_, one) = search(&s.url, &at, &format!("q=pizza&conversation_id={cid}")).await;
    assert_eq!(texts(&one), ["pizza sounds good", "Pizza tonight?"]);
    let (_, both) = search(&s.url, &at, "q=pizza%20good").await;
    assert_eq!(texts(&both), ["pizza sounds good"]);
    // Dave sees the group from his joining; Carol's chat with Bob is hers.
    let (_, d) = search(&s.url, &dt, "q=pizza").await;
    assert_eq!(texts(&d), ["group pizza after dave"]);
    let (_, c1) = search(&s.url, &ct, "q=pizza").await;
    assert_eq!(texts(&c1), ["pizza secret between carol and bob"]);
    let theirs = direct(&carol.id, &bob.id);
    let (status, v) = search(&s.url, &at, &format!("q=pizza&conversation_id={theirs}")).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    // Hidden for Alice: no longer found by her, still by Bob.
    let tonight = found["messages"][3]["msg_id"].as_str().unwrap();
    let hide = json!({"type": "send", "client_msg_id": "h", "to": {"user": bob.id},
        "body": {"delete": {"msg_id": tonight, "for_me": true}}});
    a.send(hide).await;
    a.expect("ack").await;
    eventually("hidden from Alice's search", WAIT, || async {
        let (_, v) = search(&s.url, &at, &format!("q=tonight&conversation_id={cid}")).await;
        texts(&v).is_empty().then_some(())
    })
    .await;
    let (_, bobs) = search(&s.url, &bt, "q=tonight").await;
    assert_eq!(texts(&bobs), ["Pizza tonight?"]);

    // An edit that takes the word out takes the message out of it.
    let good = found["messages"][2]["msg_id"].as_str().unwrap();
    let edit = json!({"type": "send", "client_msg_id": "e", "to": {"user": alice.id},
        "body": {"edit": {"msg_id": good, "text": "sushi sounds good"}}});
    b.send(edit).await;
    b.expect("ack").await;
    eventually("the edit in the history", WAIT, || async {
        let (_, v) = search(&s.url, &bt, &format!("q=pizza&conversation_id={cid}")).await;
        (texts(&v) == ["Pizza tonight?"]).then_some(())
    })
    .await;
    // ... and the word it put in finds the message, with its new text.
    let (_, v) = search(
        &s.url,
        &bt,
        &format!("q=SUSHI%20GOOD&conversation_id={cid}"),
    )
    .await;
    assert_eq!(texts(&v), ["sushi sounds good"]);
    assert_eq!(v["messages"][0]["msg_id"], good);
    assert_eq!(v["messages"][0]["edited"], true);

    // Bad queries, each refused with the spec's code.
    let long = "x".repeat(10 * 1024);
    for (q, status, code) in [
        (format!("q={long}"), 413, "too_large"),
        ("q=".to_owned(), 400, "bad_request"),
        (
            "q=a%20b%20c%20d%20e%20f%20g%20h%20i".to_owned(),
            400,
            "bad_request",
        ),
        ("q=pizza&limit=0".to_owned(), 400, "bad_request"),
        ("q=pizza&before=x".to_owned(), 400, "bad_request"),
        (
            "q=pizza&conversation_id=nope".to_owned(),
            400,
            "bad_request",
        ),
    ] {
        let (got, v) = search(&s.url, &at, &q).await;
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "{}: {v}",
            &q[..q.len().min(40)]
        );
    }
    s.stop().await;
}

/// Dave's user id, looked up by name.
async fn register_id(url: &str, token: &str, name: &str) -> String {
    let (status, v) = get(url, token, &format!("/v1/users?username={name}")).await;
    assert_eq!(status, 200, "{v}");
    v["user_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_on_the_embedded_history() {
    let dir = tempfile::tempdir().unwrap();
    finds_what_it_should(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_on_clickhouse() {
    let ch = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    finds_what_it_should(parley::Config {
        history: Some(ch.url.clone()),
        ..config(dir.path())
    })
    .await;
}
