//! Scrollback and the conversation list through the protocol only, on the
//! embedded history and on a real ClickHouse (a private clickhouse-server).

mod common;

use common::*;
use parley_engines::contract::servers::ClickHouseServer;
use serde_json::{json, Value};

fn ids(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn scrollback_and_conversations(cfg: parley::Config) {
    let s = Server::start_with(cfg).await;
    let url = s.url.clone();
    let (alice, bob) = alice_and_bob(&url).await;
    let carol = register(&url, "carol").await;
    let (at, _) = login(&url, "alice", None).await;
    let (bt, _) = login(&url, "bob", None).await;
    let (ct, _) = login(&url, "carol", None).await;
    let mut a = Client::connect(&url, &at).await;
    let mut sent = Vec::new();
    for i in 0..120 {
        let ack = a.say(&bob.id, &format!("h-{i}"), &format!("m{i}")).await;
        sent.push(ack["msg_id"].as_str().unwrap().to_owned());
    }
    let mut b = Client::connect(&url, &bt).await;
    let reply = b.say(&alice.id, "r-1", "reply").await;
    sent.push(reply["msg_id"].as_str().unwrap().to_owned());
    let cid = direct(&alice.id, &bob.id);
    let path = format!("/v1/conversations/{cid}/messages");

    // Once the writer has the reply, pages of 50 walk everything, newest
    // first, each message once.
    let newest = sent.last().unwrap().clone();
    eventually("the reply in history", WAIT, || async {
        let (_, page) = get(&url, &at, &format!("{path}?limit=1")).await;
        (ids(&page["messages"]) == [newest.clone()]).then_some(())
    })
    .await;
    let mut walked = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let q = match &before {
            Some(b) => format!("{path}?limit=50&before={b}"),
            None => format!("{path}?limit=50"),
        };
        let (status, page) = get(&url, &at, &q).await;
        assert_eq!(status, 200, "{page}");
        let page = ids(&page["messages"]);
        assert!(page.len() <= 50);
        if page.is_empty() {
            break;
        }
        before = page.last().cloned();
        walked.extend(page);
    }
    let mut expected = sent.clone();
    expected.reverse();
    assert_eq!(walked, expected, "every message once, newest first");
    let (_, page) = get(&url, &bt, &format!("{path}?limit=2")).await;
    let m = &page["messages"][1];
    assert_eq!(m["from"], alice.id.as_str());
    assert_eq!(m["to"], json!({"user": bob.id}));
    assert_eq!(m["body"], json!({"text": "m119"}));
    assert_eq!(m["conversation_id"], cid.as_str());
    assert!(m.get("seq").is_none(), "history has no inbox seq");
    let (_, default) = get(&url, &at, &path).await;
    assert_eq!(ids(&default["messages"]), expected[..50], "50 by default");

    // The WebSocket `history` frame answers the same pages.
    a.send(json!({"type": "history", "conversation_id": cid, "before": sent[100], "limit": 3}))
        .await;
    let h = a.expect("history").await;
    assert_eq!(h["conversation_id"], cid.as_str());
    assert_eq!(
        ids(&h["messages"]),
        [sent[99].clone(), sent[98].clone(), sent[97].clone()]
    );

    // Members only.
    let (status, e) = get(&url, &ct, &path).await;
    assert_eq!((status, e["code"].as_str()), (403, Some("forbidden")));
    let mut c = Client::connect(&url, &ct).await;
    c.send(json!({"type": "history", "conversation_id": cid}))
        .await;
    assert_eq!(c.expect("error").await["code"], "forbidden");
    // Bad values are refused; the socket stays open.
    for bad in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "before=yesterday",
        "before=-1",
    ] {
        let (status, e) = get(&url, &at, &format!("{path}?{bad}")).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {e}"
        );
    }
    let (status, _) = get(&url, &at, "/v1/conversations/x:1/messages").await;
    assert_eq!(status, 400);
    c.send(json!({"type": "history", "conversation_id": cid, "limit": 0}))
        .await;
    assert_eq!(c.expect("error").await["code"], "bad_request");
    c.send(json!({"type": "history", "conversation_id": direct(&carol.id, &alice.id)}))
        .await;
    let h = c.expect("history").await;
    assert_eq!(
        h["messages"],
        json!([]),
        "an empty chat, and the socket lives"
    );

    // The conversation list: last message and unread count.
    let (status, list) = get(&url, &bt, "/v1/conversations").await;
    assert_eq!(status, 200, "{list}");
    let entry = &list["conversations"][0];
    assert_eq!(list["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(entry["conversation_id"], cid.as_str());
    assert_eq!(entry["last_message"]["msg_id"], newest.as_str());
    assert_eq!(entry["unread"], 120);
    let (_, list) = get(&url, &at, "/v1/conversations").await;
    assert_eq!(list["conversations"][0]["unread"], 1, "bob's reply");
    // Bob reads up to message 99: twenty stay unread.
    b.send(
        json!({"type": "receipt", "conversation_id": cid, "msg_id": sent[99], "status": "read"}),
    )
    .await;
    eventually("unread after a read receipt", WAIT, || async {
        let (_, list) = get(&url, &bt, "/v1/conversations").await;
        (list["conversations"][0]["unread"] == 20).then_some(())
    })
    .await;
    let (_, list) = get(&url, &ct, "/v1/conversations").await;
    assert_eq!(list["conversations"], json!([]));
    let (status, _) = get(&url, &ct, "/v1/conversations?limit=0").await;
    assert_eq!(status, 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrollback_on_the_embedded_history() {
    let dir = tempfile::tempdir().unwrap();
    scrollback_and_conversations(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrollback_on_clickhouse() {
    let ch = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = parley::Config {
        history: Some(ch.url.clone()),
        ..config(dir.path())
    };
    scrollback_and_conversations(cfg).await;

    // `parley analytics` runs a ready query on the same history.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["analytics", "top_conversations", "--history", &ch.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("conversation  messages  senders"),
        "{text}"
    );
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&row[..3], ["d:1:2", "121", "2"], "{text}");
    assert_eq!(lines.last(), Some(&"(1 rows)"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["analytics", "no_such_query", "--history", &ch.url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no query named \"no_such_query\""), "{err}");
}
