//! A scrollback page is cut by size (4 MiB of messages, docs/security.md):
//! large messages come in shorter pages that say `more`, over HTTP and
//! over the socket, and paging on from the last one gets every message
//! once; a page of small messages is whole and says nothing.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

const BIG: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_come_in_pages_cut_by_size_that_say_more() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let mut a = Client::connect(&s.url, &at).await;
    // Quotes and newlines escape to two bytes each in JSON: ~120 KB a
    // message, so 60 are ~7 MB.
    let text = "\"\n".repeat(30_000);
    for i in 0..BIG {
        a.say_until_acked(&bob.id, &format!("big{i}"), &format!("{i:03}{text}"))
            .await;
    }
    let cid = direct(&alice.id, &bob.id);
    let path = format!("/v1/conversations/{cid}/messages?limit=200");
    eventually("the history has them all", WAIT, || async {
        let newest = format!("/v1/conversations/{cid}/messages?limit=1");
        let (_, page) = get(&s.url, &at, &newest).await;
        let t = page["messages"][0]["body"]["text"].as_str()?.to_owned();
        t.starts_with(&format!("{:03}", BIG - 1)).then_some(())
    })
    .await;

    // Over HTTP: short pages that say more, until the last.
    let mut seen = BTreeSet::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = before
            .as_ref()
            .map_or(String::new(), |b| format!("&before={b}"));
        let (status, page) = get(&s.url, &at, &format!("{path}{q}")).await;
        assert_eq!(status, 200);
        let body = serde_json::to_vec(&page["messages"]).unwrap();
        assert!(body.len() < 5 << 20, "a page of {} bytes", body.len());
        let messages = page["messages"].as_array().unwrap();
        for m in messages {
            assert!(seen.insert(m["msg_id"].as_str().unwrap().to_owned()));
        }
        pages += 1;
        if page["more"] != true {
            break;
        }
        before = Some(
            messages.last().unwrap()["msg_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(seen.len(), BIG);
    assert!(pages >= 2, "{pages} pages");

    // Over the socket: the same first page, `more` and all.
    a.send(json!({"type": "history", "conversation_id": cid, "limit": 200}))
        .await;
    let page = a.expect("history").await;
    assert_eq!(page["more"], true);
    let n = page["messages"].as_array().unwrap().len();
    assert!(n < BIG && n > 0, "{n}");

    // Small messages: a whole page, no `more`.
    let carol = register(&s.url, "carol").await;
    for i in 0..30 {
        a.say_until_acked(&carol.id, &format!("small{i}"), "hi")
            .await;
    }
    let small = direct(&alice.id, &carol.id);
    let page: Value = eventually("the small ones stored", WAIT, || async {
        let (_, page) = get(&s.url, &at, &format!("/v1/conversations/{small}/messages")).await;
        (page["messages"].as_array()?.len() == 30).then_some(page)
    })
    .await;
    assert!(page.get("more").is_none(), "{page}");
}
