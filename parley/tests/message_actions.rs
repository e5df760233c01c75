//! Edits, deletions (for everyone, for me), reactions, replies and
//! forwards, through the protocol: each reaches the devices it should as
//! a `msg` frame, bad ones get the spec's error and change nothing,
//! scrollback folds them in, and a restart that rebuilds the state from
//! the log judges them the same. Run on the embedded engines, and on
//! Redis and ClickHouse.

mod common;

use common::*;
use parley_engines::contract::servers::{ClickHouseServer, RedisServer};
use serde_json::{json, Value};

fn send(to: Value, cid: &str, body: Value) -> Value {
    json!({"type": "send", "client_msg_id": cid, "to": to, "body": body})
}

/// Sends `frame`; its `ack` or `error`.
async fn answer(c: &mut Client, frame: Value) -> Value {
    c.send(frame).await;
    loop {
        let f = c.next().await;
        if matches!(f["type"].as_str(), Some("ack" | "error")) {
            return f;
        }
    }
}

async fn acked(c: &mut Client, frame: Value) -> String {
    let f = answer(c, frame).await;
    assert_eq!(f["type"], "ack", "{f}");
    f["msg_id"].as_str().unwrap().to_owned()
}

async fn refused(c: &mut Client, frame: Value, code: &str) {
    let f = answer(c, frame).await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("error"), Some(code)),
        "{f}"
    );
}

/// The next `msg` frame whose body is of `kind`.
async fn next_of(c: &mut Client, kind: &str) -> Value {
    loop {
        let m = c.expect("msg").await;
        if m["body"].get(kind).is_some() {
            return m;
        }
    }
}

/// Scrollback (one page) as `token` sees it, once the history holds `n`
/// messages and `ready` holds of it.
async fn page_when(
    url: &str,
    token: &str,
    cid: &str,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    eventually("scrollback with the actions", WAIT, || async {
        let (status, v) = get(url, token, &format!("/v1/conversations/{cid}/messages")).await;
        assert_eq!(status, 200, "{v}");
        let page = v["messages"].as_array().unwrap().clone();
        ready(&page).then_some(page)
    })
    .await
}

fn by_id<'a>(page: &'a [Value], id: &str) -> Option<&'a Value> {
    page.iter().find(|m| m["msg_id"] == id)
}

struct Sent {
    first: String,
    deleted: String,
    reply: String,
}

/// Alice (two devices) and Bob in a 1:1 chat, every action once; the
/// server is stopped after.
async fn act_then_stop(cfg: parley::Config) -> (User, User, Sent) {
    let s = Server::start_with(cfg).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    register(&s.url, "carol").await;
    let (phone, _) = login(&s.url, "alice", None).await;
    let (laptop, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;
    let mut p = Client::connect(&s.url, &phone).await;
    let mut l = Client::connect(&s.url, &laptop).await;
    let mut b = Client::connect(&s.url, &bt).await;
    let mut c = Client::connect(&s.url, &ct).await;
    let to_bob = json!({"user": bob.id});
    let to_alice = json!({"user": alice.id});
    let cid = direct(&alice.id, &bob.id);

    let first = p.say(&bob.id, "m1", "hello").await["msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Edited at once: the index may trail the ack, and the edge waits for it.
    let edit = json!({"edit": {"msg_id": first, "text": "hello, edited"}});
    acked(&mut p, send(to_bob.clone(), "e1", edit)).await;
    for dev in [&mut b, &mut l] {
        let m = next_of(dev, "edit").await;
        assert_eq!(m["body"]["edit"]["msg_id"], first);
        assert_eq!(m["body"]["edit"]["text"], "hello, edited");
        assert_eq!(m["from"], alice.id);
    }

    // What may not be done is refused and changes nothing.
    let forged = json!({"edit": {"msg_id": first, "text": "forged"}});
    refused(&mut b, send(to_alice.clone(), "x1", forged), "forbidden").await;
    let empty = json!({"edit": {"msg_id": first, "text": ""}});
    refused(&mut p, send(to_bob.clone(), "x2", empty), "bad_request").await;
    let words = json!({"reaction": {"msg_id": first, "emoji": "nice"}});
    refused(&mut b, send(to_alice.clone(), "x3", words), "bad_request").await;
    let unknown = json!({"reaction": {"msg_id": "4398046511104", "emoji": "👍"}});
    refused(&mut b, send(to_alice.clone(), "x4", unknown), "not_found").await;
    // Carol names Alice and Bob's message in her own chat with Alice.
    let elsewhere = json!({"reaction": {"msg_id": first, "emoji": "👍"}});
    refused(&mut c, send(to_alice.clone(), "x5", elsewhere), "not_found").await;
    let reply_elsewhere = json!({"type": "send", "client_msg_id": "x6", "to": to_alice,
        "body": {"text": "re"}, "reply_to": first});
    refused(&mut c, reply_elsewhere, "not_found").await;
    let both = json!({"type": "send", "client_msg_id": "x7", "to": to_alice,
        "body": {"reaction": {"msg_id": first, "emoji": "👍"}}, "reply_to": first});
    refused(&mut b, both, "bad_request").await;

    // Bob reacts, changes his mind, and replies.
    for (i, emoji) in ["😂", "👍"].iter().enumerate() {
        let r = json!({"reaction": {"msg_id": first, "emoji": emoji}});
        acked(&mut b, send(to_alice.clone(), &format!("r{i}"), r)).await;
        let m = next_of(&mut p, "reaction").await;
        assert_eq!(m["body"]["reaction"]["emoji"], *emoji);
    }
    let reply = json!({"type": "send", "client_msg_id": "re1", "to": to_alice,
        "body": {"text": "hi!"}, "reply_to": first});
    let reply = acked(&mut b, reply).await;
    let m = next_of(&mut l, "text").await;
    assert_eq!(
        (m["msg_id"].as_str(), m["reply_to"].as_str()),
        (Some(reply.as_str()), Some(first.as_str()))
    );

    // Alice deletes a message for everyone; editing it after is refused.
    let deleted = p.say(&bob.id, "m2", "oops").await["msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let del = json!({"delete": {"msg_id": deleted}});
    acked(&mut p, send(to_bob.clone(), "d1", del)).await;
    let m = next_of(&mut b, "delete").await;
    assert_eq!(m["body"]["delete"]["msg_id"], deleted);
    let late = json!({"edit": {"msg_id": deleted, "text": "again"}});
    refused(&mut p, send(to_bob.clone(), "x8", late), "not_found").await;
    let react_gone = json!({"reaction": {"msg_id": deleted, "emoji": "👍"}});
    refused(
        &mut b,
        send(to_alice.clone(), "x9", react_gone),
        "not_found",
    )
    .await;
    // Bob cannot delete Alice's message for everyone, only for himself.
    let not_his = json!({"delete": {"msg_id": first}});
    refused(&mut b, send(to_alice.clone(), "x10", not_his), "forbidden").await;
    let hide = json!({"delete": {"msg_id": first, "for_me": true}});
    acked(&mut b, send(to_alice.clone(), "h1", hide)).await;
    // Alice's devices never see Bob's hide: up to the message he sent
    // after it, nothing she gets is it.
    b.say(&alice.id, "after", "after the hide").await;
    loop {
        let m = p.expect("msg").await;
        assert_ne!(m["body"]["delete"]["for_me"], true, "{m}");
        if m["body"]["text"] == "after the hide" {
            break;
        }
    }

    // Scrollback: Alice sees the edit, the reaction, the quote and the
    // deletion; Bob does not see what he hid.
    let alices = page_when(&s.url, &phone, &cid, |page| {
        by_id(page, &deleted).is_some_and(|m| m["deleted"] == true)
            && by_id(page, &first).is_some_and(|m| m["reactions"].is_array())
    })
    .await;
    check_alices_view(&alices, &first, &deleted, &reply, &bob.id);
    let bobs = page_when(&s.url, &bt, &cid, |page| by_id(page, &reply).is_some()).await;
    assert!(by_id(&bobs, &first).is_none(), "hidden for Bob: {bobs:?}");
    s.stop().await;
    (
        alice,
        bob,
        Sent {
            first,
            deleted,
            reply,
        },
    )
}

fn check_alices_view(page: &[Value], first: &str, deleted: &str, reply: &str, bob: &str) {
    let f = by_id(page, first).unwrap();
    assert_eq!(f["body"]["text"], "hello, edited");
    assert_eq!(f["edited"], true);
    assert_eq!(
        f["reactions"],
        json!([{"emoji": "👍", "count": 1, "users": [bob]}])
    );
    let d = by_id(page, deleted).unwrap();
    assert_eq!(d["body"]["text"], "");
    assert!(d.get("reactions").is_none() && d.get("edited").is_none());
    let r = by_id(page, reply).unwrap();
    assert_eq!(r["reply_to"], first);
    assert_eq!(r["quote"]["msg_id"], first);
    assert_eq!(
        r["quote"]["from"].as_str(),
        page.iter().find(|m| m["msg_id"] == first).unwrap()["from"].as_str()
    );
    assert_eq!(r["quote"]["text"], "hello");
    assert!(
        page.iter()
            .all(|m| ["text"].iter().any(|k| m["body"].get(k).is_some())),
        "no action in scrollback: {page:?}"
    );
}

/// After a restart (the state rebuilt from the log when `wiped`): the same
/// scrollback, the edit window closed, the deletion still in force.
async fn after_restart(mut cfg: parley::Config, alice: &User, bob: &User, sent: &Sent) {
    cfg.limits.edit_window_ms = 1;
    let s = Server::start_with(cfg).await;
    let (phone, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut p = Client::connect(&s.url, &phone).await;
    let mut b = Client::connect(&s.url, &bt).await;
    let cid = direct(&alice.id, &bob.id);
    let page = page_when(&s.url, &phone, &cid, |page| {
        by_id(page, &sent.first).is_some_and(|m| m["edited"] == true)
            && by_id(page, &sent.deleted).is_some_and(|m| m["deleted"] == true)
    })
    .await;
    check_alices_view(&page, &sent.first, &sent.deleted, &sent.reply, &bob.id);
    let to_bob = json!({"user": bob.id});
    let late = json!({"edit": {"msg_id": sent.first, "text": "too late"}});
    refused(&mut p, send(to_bob.clone(), "y1", late), "forbidden").await;
    let gone = json!({"edit": {"msg_id": sent.deleted, "text": "x"}});
    refused(&mut p, send(to_bob, "y2", gone), "not_found").await;
    let r = json!({"reaction": {"msg_id": sent.first, "emoji": ""}});
    acked(&mut b, send(json!({"user": alice.id}), "y3", r)).await;
    page_when(&s.url, &phone, &cid, |page| {
        by_id(page, &sent.first).is_some_and(|m| m.get("reactions").is_none())
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_actions_in_a_chat_and_after_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, sent) = act_then_stop(config(dir.path())).await;
    // State and history are derived from the log: wiped, both come back.
    std::fs::remove_file(dir.path().join("state.redb")).unwrap();
    std::fs::remove_file(dir.path().join("history.redb")).unwrap();
    after_restart(config(dir.path()), &alice, &bob, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_actions_on_redis_and_clickhouse() {
    let redis = RedisServer::start();
    let ch = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = || parley::Config {
        state: Some(redis.url.clone()),
        history: Some(ch.url.clone()),
        ..config(dir.path())
    };
    let (alice, bob, sent) = act_then_stop(cfg()).await;
    after_restart(cfg(), &alice, &bob, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_admins_delete_and_late_members_cannot_act_on_what_they_never_saw() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let ([_alice, bob, carol], [at, bt, ct]) = three_signed_in(&s.url).await;
    let dave = register(&s.url, "dave").await;
    register(&s.url, "eve").await;
    let (dt, _) = login(&s.url, "dave", None).await;
    let (et, _) = login(&s.url, "eve", None).await;
    let g = create_group(&s.url, &at, "trip", &[&bob.id, &carol.id]).await;
    let to = json!({"group": g});
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    let mut c = Client::connect(&s.url, &ct).await;
    let old = acked(&mut b, send_frame(&g, "g1", "before dave")).await;
    let by_alice = acked(&mut a, send_frame(&g, "g2", "alice's")).await;

    // Carol is no admin: Alice's message is not hers to delete.
    refused(
        &mut c,
        send(to.clone(), "x1", json!({"delete": {"msg_id": by_alice}})),
        "forbidden",
    )
    .await;
    // Alice, the admin, deletes Bob's message; every member is told.
    acked(
        &mut a,
        send(to.clone(), "d1", json!({"delete": {"msg_id": old}})),
    )
    .await;
    for dev in [&mut b, &mut c] {
        assert_eq!(
            next_of(dev, "delete").await["body"]["delete"]["msg_id"],
            old
        );
    }

    // Dave joins later: what was sent before is not his to act on.
    let (status, v) = call(
        reqwest::Method::POST,
        &format!("{}/v1/groups/{g}/members", s.url),
        &at,
        Some(json!({"user_id": dave.id})),
    )
    .await;
    assert_eq!(status, 204, "{v}");
    let mut d = Client::connect(&s.url, &dt).await;
    let r = json!({"reaction": {"msg_id": by_alice, "emoji": "👍"}});
    refused(&mut d, send(to.clone(), "x2", r.clone()), "forbidden").await;
    let reply = json!({"type": "send", "client_msg_id": "x3", "to": to,
        "body": {"text": "?"}, "reply_to": by_alice});
    refused(&mut d, reply, "forbidden").await;
    // Eve is no member at all.
    let mut e = Client::connect(&s.url, &et).await;
    refused(&mut e, send(to.clone(), "x4", r), "forbidden").await;

    // Reactions aggregate per emoji, one per member.
    let news = acked(&mut a, send_frame(&g, "g3", "news")).await;
    for (dev, emoji) in [(&mut b, "👍"), (&mut c, "👍"), (&mut d, "❤️")] {
        let r = json!({"reaction": {"msg_id": news, "emoji": emoji}});
        acked(dev, send(to.clone(), "r", r)).await;
    }
    let page = page_when(&s.url, &at, &format!("g:{g}"), |page| {
        by_id(page, &news).is_some_and(|m| m["reactions"].as_array().is_some_and(|r| r.len() == 2))
    })
    .await;
    assert_eq!(
        by_id(&page, &news).unwrap()["reactions"],
        json!([{"emoji": "👍", "count": 2, "users": [bob.id, carol.id]},
               {"emoji": "❤️", "count": 1, "users": [dave.id]}])
    );
    assert_eq!(by_id(&page, &old).unwrap()["deleted"], true);
    // Actions are no messages to tick, count or list.
    let (_, list) = get(&s.url, &bt, "/v1/conversations").await;
    assert_eq!(
        list["conversations"][0]["last_message"]["msg_id"], news,
        "{list}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_reaches_at_most_five_chats_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let alice = register(&s.url, "alice").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let mut friends = Vec::new();
    for i in 0..6 {
        friends.push(register(&s.url, &format!("friend{i}")).await);
    }
    let (f0, _) = login(&s.url, "friend0", None).await;
    let mut a = Client::connect(&s.url, &at).await;
    let mut r = Client::connect(&s.url, &f0).await;
    for (i, f) in friends.iter().enumerate() {
        let fwd = json!({"type": "send", "client_msg_id": format!("f{i}"), "to": {"user": f.id},
            "body": {"text": "chain letter"}, "forwarded": true});
        if i < 5 {
            acked(&mut a, fwd).await;
        } else {
            refused(&mut a, fwd, "rate_limited").await;
        }
    }
    let m = r.expect("msg").await;
    assert_eq!(
        (m["forwarded"].as_bool(), m["from"].as_str()),
        (Some(true), Some(alice.id.as_str()))
    );
    // A plain send is no forward, and goes.
    a.say(&friends[5].id, "plain", "hello").await;
    assert!(metric(&s.url, "parley_limit_hits_total", "forwards").await >= 1.0);
    s.stop().await;
}
