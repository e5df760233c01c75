//! Groups respect removals, admin rights and blocks, and a member's span
//! bounds everything they read: someone an admin removed cannot come back
//! by an invite, invites die with their creator's admin rights, nobody is
//! put in a group with someone they block, and scrollback shows no quote
//! from before a member joined, nor an edit or reaction from after they
//! left.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn invite(url: &str, token: &str, group: &str) -> String {
    let (status, v) = call(
        Method::POST,
        &format!("{url}/v1/groups/{group}/invites"),
        token,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

/// Joins with the token in the body, as a client should (the path form
/// is the deprecated one, tested in invites.rs).
async fn join(url: &str, token: &str, invite: &str) -> (u16, Value) {
    call(
        Method::POST,
        &format!("{url}/v1/invites"),
        token,
        Some(json!({"token": invite})),
    )
    .await
}

async fn add(url: &str, token: &str, group: &str, user: &str) -> (u16, Value) {
    call(
        Method::POST,
        &format!("{url}/v1/groups/{group}/members"),
        token,
        Some(json!({"user_id": user})),
    )
    .await
}

async fn remove(url: &str, token: &str, group: &str, user: &str) -> u16 {
    let path = format!("{url}/v1/groups/{group}/members/{user}");
    call(Method::DELETE, &path, token, None).await.0
}

async fn admin(url: &str, token: &str, group: &str, user: &str, on: bool) -> u16 {
    let method = if on { Method::PUT } else { Method::DELETE };
    let path = format!("{url}/v1/groups/{group}/admins/{user}");
    call(method, &path, token, None).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_and_admin_rights_bind_invites() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let ([_, bob, carol], [at, bt, ct]) = three_signed_in(&s.url).await;
    let g = create_group(&s.url, &at, "club", &[&bob.id]).await;
    let open = invite(&s.url, &at, &g).await;

    // Bob leaves on his own: the invite brings him back.
    assert_eq!(remove(&s.url, &bt, &g, &bob.id).await, 204);
    assert_eq!(join(&s.url, &bt, &open).await.0, 200);
    // Alice removes him: no invite does, until she adds him back.
    assert_eq!(remove(&s.url, &at, &g, &bob.id).await, 204);
    let (status, v) = join(&s.url, &bt, &open).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let fresh = invite(&s.url, &at, &g).await;
    assert_eq!(join(&s.url, &bt, &fresh).await.0, 403, "no invite at all");
    assert_eq!(add(&s.url, &at, &g, &bob.id).await.0, 204);

    // Bob, made admin, makes an invite; demoted, it stops working.
    assert_eq!(admin(&s.url, &at, &g, &bob.id, true).await, 200);
    let bobs = invite(&s.url, &bt, &g).await;
    assert_eq!(admin(&s.url, &at, &g, &bob.id, false).await, 200);
    let (status, v) = join(&s.url, &ct, &bobs).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    // Alice's still admits Carol.
    assert_eq!(join(&s.url, &ct, &open).await.0, 200);
    let _ = carol;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_is_put_in_a_group_with_someone_they_block() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let ([_, bob, carol], [at, bt, _]) = three_signed_in(&s.url).await;
    assert_eq!(block(&s.url, &bt, &carol.id).await, 204);
    // Alice cannot make a group of Bob and the one he blocks...
    let (status, v) = call(
        Method::POST,
        &format!("{}/v1/groups", s.url),
        &at,
        Some(json!({"name": "both", "members": [bob.id, carol.id]})),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    // ...nor add him to a group she holds with Carol.
    let g = create_group(&s.url, &at, "with carol", &[&carol.id]).await;
    let (status, v) = add(&s.url, &at, &g, &bob.id).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    // Bob may still join it himself, by an invite he chose to use.
    let link = invite(&s.url, &at, &g).await;
    assert_eq!(join(&s.url, &bt, &link).await.0, 200);
    s.stop().await;
}

fn by_id<'a>(page: &'a [Value], id: &Value) -> Option<&'a Value> {
    page.iter().find(|m| m["msg_id"] == *id)
}

async fn page(url: &str, token: &str, cid: &str) -> Vec<Value> {
    let (status, v) = get(url, token, &format!("/v1/conversations/{cid}/messages")).await;
    assert_eq!(status, 200, "{v}");
    v["messages"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_span_bounds_quotes_edits_and_reactions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let ([_, bob, carol], [at, _, ct]) = three_signed_in(&s.url).await;
    let g = create_group(&s.url, &at, "club", &[&bob.id]).await;
    let cid = format!("g:{g}");
    let mut a = Client::connect(&s.url, &at).await;
    let send = |cid: &str, body: Value, reply_to: Option<&Value>| {
        let mut f = json!({"type": "send", "client_msg_id": cid, "to": {"group": g}, "body": body});
        if let Some(r) = reply_to {
            f["reply_to"] = r.clone();
        }
        f
    };
    a.send(send("old", json!({"text": "before carol"}), None))
        .await;
    let old = a.expect("ack").await["msg_id"].clone();
    assert_eq!(add(&s.url, &at, &g, &carol.id).await.0, 204);
    a.send(send("re", json!({"text": "a reply"}), Some(&old)))
        .await;
    let reply = a.expect("ack").await["msg_id"].clone();
    a.send(send("seen", json!({"text": "while carol is in"}), None))
        .await;
    let seen = a.expect("ack").await["msg_id"].clone();
    assert_eq!(remove(&s.url, &at, &g, &carol.id).await, 204);
    // After Carol left: an edit and a reaction on what she saw.
    let edit = json!({"edit": {"msg_id": seen, "text": "changed after carol left"}});
    a.send(send("e", edit, None)).await;
    a.expect("ack").await;
    a.send(send(
        "r",
        json!({"reaction": {"msg_id": seen, "emoji": "👍"}}),
        None,
    ))
    .await;
    a.expect("ack").await;

    // Alice's view has it all, once the history has it.
    eventually("the history has the actions", WAIT, || async {
        let p = page(&s.url, &at, &cid).await;
        let done = by_id(&p, &seen)
            .is_some_and(|m| m["edited"] == true && m["reactions"].is_array())
            && by_id(&p, &reply).is_some_and(|m| m["quote"]["msg_id"] == old);
        done.then_some(())
    })
    .await;
    // Carol's: the reply without the quote, the message as she saw it.
    let p = page(&s.url, &ct, &cid).await;
    assert!(by_id(&p, &old).is_none(), "from before she joined: {p:?}");
    let r = by_id(&p, &reply).expect("the reply, sent while she was in");
    assert!(r.get("quote").is_none_or(Value::is_null), "{r}");
    assert_eq!(r["reply_to"], old, "what it answers is said, not shown");
    let m = by_id(&p, &seen).expect("seen while she was in");
    assert_eq!(m["body"]["text"], "while carol is in", "{m}");
    assert!(m.get("edited").is_none_or(|e| e != true), "{m}");
    assert!(m.get("reactions").is_none_or(Value::is_null), "{m}");
    s.stop().await;
}

/// Bob keeps sending to the group while Alice removes him. Every send he
/// was acked for is either delivered to Alice or refused to him with an
/// `error` naming it: none is acked and silently dropped (the router
/// judges membership in log order, after the edge's check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_acked_as_its_sender_is_removed_is_delivered_or_refused_aloud() {
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.sends_per_sec = 10_000;
    let s = Server::start_with(cfg).await;
    let ([_, bob, _], [at, bt, _]) = three_signed_in(&s.url).await;
    let g = create_group(&s.url, &at, "club", &[&bob.id]).await;
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    const N: usize = 150;
    let frame = |i: usize| send_frame(&g, &format!("c{i}"), &format!("m{i}"));
    // Bob sends one every millisecond; a third of the way in, Alice
    // removes him.
    let sending = async {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for i in 0..N {
            tick.tick().await;
            b.send(frame(i)).await;
        }
    };
    let removing = async {
        tokio::time::sleep(Duration::from_millis(N as u64 / 3)).await;
        remove(&s.url, &at, &g, &bob.id).await
    };
    let ((), removed) = tokio::join!(sending, removing);
    assert_eq!(removed, 204);
    // cid -> msg_id of Bob's acks; cids refused before or after an ack.
    let mut acked: HashMap<String, Value> = HashMap::new();
    let mut refused: HashSet<String> = HashSet::new();
    let mut answered = 0;
    let mut delivered: HashSet<Value> = HashSet::new();
    let settled =
        |acked: &HashMap<String, Value>, refused: &HashSet<String>, delivered: &HashSet<Value>| {
            acked
                .iter()
                .all(|(cid, id)| delivered.contains(id) ^ refused.contains(cid))
        };
    let deadline = tokio::time::Instant::now() + WAIT;
    while answered < N || !settled(&acked, &refused, &delivered) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "acked and neither delivered nor refused: {:?}",
            acked
                .iter()
                .filter(|(c, id)| !delivered.contains(*id) && !refused.contains(*c))
                .collect::<Vec<_>>()
        );
        tokio::select! {
            f = b.recv() => {
                let f = f.expect("Bob's socket stays open");
                match f["type"].as_str() {
                    Some("ack") => {
                        answered += 1;
                        acked.insert(f["client_msg_id"].as_str().unwrap().into(), f["msg_id"].clone());
                    }
                    Some("error") => {
                        let cid = f["ref"].as_str().expect("an error names its send").to_owned();
                        assert_eq!(f["code"], "forbidden", "{f}");
                        if !acked.contains_key(&cid) {
                            answered += 1;
                        }
                        refused.insert(cid);
                    }
                    _ => {}
                }
            }
            f = a.recv() => {
                let f = f.expect("Alice's socket stays open");
                if f["type"] == "msg" && f["from"] == bob.id {
                    delivered.insert(f["msg_id"].clone());
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let late = acked.keys().filter(|c| refused.contains(*c)).count();
    eprintln!(
        "{} acked, {late} of them refused after the ack",
        acked.len()
    );
    s.stop().await;
}
