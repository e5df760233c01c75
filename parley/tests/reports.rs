//! Reports through the protocol: a member reports a message with the
//! chat's last messages attached, a non-member cannot, bad reports are
//! refused and limited, and an operator reads them with
//! `parley moderation`.

mod common;

use common::*;
use serde_json::{json, Value};

async fn report(url: &str, token: &str, body: Value) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        &format!("{url}/v1/reports"),
        token,
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reports_a_message_and_the_operator_reads_it_with_the_chat() {
    let dir = tempfile::tempdir().unwrap();
    a_member_reports_a_message_and_the_operator_reads_it_with_the_chat_with(config(dir.path()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reports_a_message_and_the_operator_reads_it_with_the_chat_on_redis_and_clickhouse(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, cfg) = on_redis_and_clickhouse(dir.path());
    a_member_reports_a_message_and_the_operator_reads_it_with_the_chat_with(cfg).await;
}

async fn a_member_reports_a_message_and_the_operator_reads_it_with_the_chat_with(
    cfg: parley::Config,
) {
    let dir = cfg.data_dir.clone();
    let s = Server::start_with(cfg.clone()).await;
    let ([alice, bob, _], [at, bt, ct]) = three_signed_in(&s.url).await;
    let mut b = Client::connect(&s.url, &bt).await;
    let mut abusive = Vec::new();
    for i in 0..3 {
        abusive.push(
            b.say(&alice.id, &format!("x{i}"), &format!("buy my pills {i}"))
                .await,
        );
    }
    let cid = abusive[0]["conversation_id"].as_str().unwrap().to_owned();
    // The report carries what scrollback shows, which trails the log.
    eventually("scrollback has the messages", WAIT, || async {
        (scrollback(&s.url, &at, &cid).await.len() == 3).then_some(())
    })
    .await;

    let (status, created) = report(
        &s.url,
        &at,
        json!({"conversation_id": cid, "msg_id": abusive[2]["msg_id"], "user_id": bob.id, "reason": "spam"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let report_id = created["report_id"].as_str().unwrap().to_owned();

    // Not in the chat: forbidden. Bad reports: refused, nothing filed.
    let (status, e) = report(&s.url, &ct, json!({"conversation_id": cid, "reason": "?"})).await;
    assert_eq!((status, e["code"].as_str()), (403, Some("forbidden")));
    for bad in [
        json!({"reason": "nothing named"}),
        json!({"msg_id": abusive[0]["msg_id"], "reason": "no chat"}),
        json!({"user_id": alice.id, "reason": "myself"}),
        json!({"user_id": bob.id, "reason": "x".repeat(1001)}),
        json!({"user_id": bob.id, "what": "unknown field"}),
    ] {
        let (status, e) = report(&s.url, &at, bad.clone()).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {e}"
        );
    }
    // Ten a minute per user.
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(
            report(&s.url, &at, json!({"user_id": bob.id, "reason": "again"}))
                .await
                .0,
        );
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 9, "{codes:?}");
    assert_eq!(codes.last(), Some(&429));
    s.stop().await;

    // The operator's view: the report, with the chat as Alice saw it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["moderation", "--data-dir"])
        .arg(&dir)
        .env("PARLEY_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 10, "one and nine more");
    let r = reports
        .iter()
        .find(|r| r["report_id"] == report_id.as_str())
        .unwrap();
    assert_eq!(
        (r["reporter"].as_str(), r["reason"].as_str()),
        (Some(alice.id.as_str()), Some("spam"))
    );
    assert_eq!(r["msg_id"], abusive[2]["msg_id"]);
    let texts: Vec<&str> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["buy my pills 2", "buy my pills 1", "buy my pills 0"]
    );
}
