//! Groups through the protocol: fan-out to every member in order, backlog
//! for offline members, per-member and aggregate ticks, admin rights,
//! removal, non-members, and typing with its rate limit.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The next frame of type `ty`, first among those skipped while the
/// client waited for something else.
async fn take(c: &mut Client, ty: &str) -> Value {
    match c.skipped.iter().position(|m| m["type"] == ty) {
        Some(i) => c.skipped.remove(i),
        None => c.expect(ty).await,
    }
}

/// The next `n` `msg` frames of a client, as msg ids.
async fn msg_ids(c: &mut Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < n {
        ids.push(take(c, "msg").await["msg_id"].as_str().unwrap().to_owned());
    }
    ids
}

fn by_number(ids: &[String]) -> Vec<String> {
    let mut v = ids.to_vec();
    v.sort_by_key(|s| s.parse::<u64>().unwrap());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_50_with_three_offline_gets_every_message_in_order_with_ticks() {
    // 50 members is below the default threshold: write fan-out.
    assert!(parley::Config::default().group_read_fanout_above >= 50);
    group_of_50(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_over_read_fan_out() {
    group_of_50(Some(10)).await;
}

/// A server; `fanout_above` sets its read fan-out threshold.
async fn start(dir: &std::path::Path, fanout_above: Option<usize>) -> Server {
    let mut cfg = common::config(dir);
    if let Some(n) = fanout_above {
        cfg.group_read_fanout_above = n;
    }
    Server::start_with(cfg).await
}

/// The acceptance scenario; `fanout_above` sets the read fan-out threshold.
async fn group_of_50(fanout_above: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), fanout_above).await;
    let mut users = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..50 {
        let name = format!("member{i:02}");
        users.push(register(&s.url, &name).await);
        tokens.push(login(&s.url, &name, None).await);
    }
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let group = create_group(&s.url, &tokens[0].0, "fifty", &ids[1..]).await;
    let cid = format!("g:{group}");

    let (status, info) = get(&s.url, &tokens[7].0, &format!("/v1/groups/{group}")).await;
    assert_eq!(status, 200);
    assert_eq!(info["name"], "fifty");
    let members: HashSet<&str> = info["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(members, ids.iter().copied().collect());
    assert_eq!(
        info["members"][0],
        json!({"user_id": ids[0], "admin": true})
    );

    // 47 online; the last three stay offline.
    let mut online = Vec::new();
    for (token, _) in &tokens[..47] {
        online.push(Client::connect(&s.url, token).await);
    }
    // Three senders, interleaved.
    let mut acked = Vec::new();
    for i in 0..12 {
        let who = i % 3;
        online[who]
            .send(send_frame(&group, &format!("c{i}"), &format!("hello {i}")))
            .await;
        let ack = online[who].expect("ack").await;
        assert_eq!(ack["conversation_id"], cid);
        acked.push((who, ack["msg_id"].as_str().unwrap().to_owned()));
    }
    let all_ids: Vec<String> = acked.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(by_number(&all_ids), all_ids, "acks rise in send order");

    // Every online member gets every message but those it sent itself, in
    // msg_id order.
    let reads = online.iter_mut().enumerate().map(|(i, c)| {
        let want: Vec<String> = acked
            .iter()
            .filter(|(who, _)| *who != i)
            .map(|(_, id)| id.clone())
            .collect();
        async move {
            let got = msg_ids(c, want.len()).await;
            assert_eq!(got, want, "member {i}");
        }
    });
    futures::future::join_all(reads).await;

    let last = all_ids.last().unwrap().clone();
    let sender0_last = acked
        .iter()
        .rev()
        .find(|(w, _)| *w == 0)
        .map(|(_, id)| id.clone())
        .unwrap();
    // Online members acknowledge: sender 0 sees a tick from each of them
    // for its newest message (the other two senders read it by answering),
    // but no aggregate yet: three members have received nothing.
    for c in &mut online[3..] {
        c.send(json!({"type": "receipt", "conversation_id": cid, "msg_id": last, "status": "delivered"}))
            .await;
    }
    let mut by = BTreeSet::new();
    while by.len() < 46 {
        let st = take(&mut online[0], "status").await;
        assert_eq!(st["conversation_id"], cid);
        assert!(
            st.get("all").is_none(),
            "no aggregate while three lack it: {st}"
        );
        if st["msg_id"] == sender0_last {
            by.insert(st["by"].as_str().unwrap().to_owned());
        }
    }
    assert!(online[0].quiet("status", Duration::from_millis(300)).await);

    // The offline three come back and get the backlog in order.
    let mut late = Vec::new();
    for (token, _) in &tokens[47..] {
        let mut c = Client::connect(&s.url, token).await;
        c.send(json!({"type": "sync"})).await;
        let mut got = Vec::new();
        for want in 1..=all_ids.len() as u64 {
            let m = take(&mut c, "msg").await;
            assert_eq!(m["seq"], want, "one seq per inbox item: {m}");
            got.push(m["msg_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(got, all_ids);
        c.send(json!({"type": "receipt", "conversation_id": cid, "msg_id": last, "status": "delivered"}))
            .await;
        late.push(c);
    }
    // Their per-member ticks, then the aggregate: all 49 others have it.
    let mut seen_all = None;
    while seen_all.is_none() {
        let st = take(&mut online[0], "status").await;
        if st["all"] == json!(true) {
            seen_all = Some(st);
        } else {
            by.insert(st["by"].as_str().unwrap().to_owned());
        }
    }
    let all = seen_all.unwrap();
    assert_eq!(all["status"], "delivered");
    assert_eq!(all["msg_id"], sender0_last);
    assert_eq!(by.len(), 49, "one tick per other member");
    assert!(!by.contains(ids[0]));

    // Read by everyone: the aggregate read tick follows.
    for c in online[1..].iter_mut().chain(late.iter_mut()) {
        c.send(
            json!({"type": "receipt", "conversation_id": cid, "msg_id": last, "status": "read"}),
        )
        .await;
    }
    loop {
        let st = take(&mut online[0], "status").await;
        if st["all"] == json!(true) && st["status"] == "read" {
            assert_eq!(st["msg_id"], sender0_last);
            break;
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_remove_and_removed_members_stop_at_once() {
    removal(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_over_read_fan_out() {
    // Every group of this test has more than one member.
    removal(Some(1)).await;
}

async fn removal(fanout_above: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), fanout_above).await;
    let (alice, bob) = alice_and_bob(&s.url).await;
    let carol = register(&s.url, "carol").await;
    let dave = register(&s.url, "dave").await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let (ct, _) = login(&s.url, "carol", None).await;
    let (dt, _) = login(&s.url, "dave", None).await;
    let group = create_group(&s.url, &at, "team", &[&bob.id, &carol.id]).await;
    let cid = format!("g:{group}");
    let members = format!("{}/v1/groups/{group}/members", s.url);
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    let mut c = Client::connect(&s.url, &ct).await;
    let mut d = Client::connect(&s.url, &dt).await;

    // A non-member may not send, read, receipt, type or see the members.
    d.send(send_frame(&group, "d1", "let me in")).await;
    let e = d.expect("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("forbidden"), Some("d1"))
    );
    for frame in [
        json!({"type": "receipt", "conversation_id": cid, "msg_id": "1", "status": "read"}),
        json!({"type": "typing", "conversation_id": cid}),
        json!({"type": "history", "conversation_id": cid}),
    ] {
        d.send(frame).await;
        assert_eq!(d.expect("error").await["code"], "forbidden");
    }
    assert_eq!(
        get(&s.url, &dt, &format!("/v1/groups/{group}")).await.0,
        403
    );
    let history = format!("/v1/conversations/{cid}/messages");
    assert_eq!(get(&s.url, &dt, &history).await.0, 403);
    // Unknown and malformed groups.
    assert_eq!(get(&s.url, &at, "/v1/groups/12345").await.0, 404);
    assert_eq!(get(&s.url, &at, "/v1/groups/x1").await.0, 400);
    d.send(send_frame("999", "d2", "hi")).await;
    assert_eq!(d.expect("error").await["code"], "not_found");

    // Only admins add and remove; bad bodies are bad requests.
    let post = reqwest::Method::POST;
    let del = reqwest::Method::DELETE;
    let add = |who: &str| Some(json!({"user_id": who}));
    assert_eq!(
        call(post.clone(), &members, &bt, add(&dave.id)).await.0,
        403
    );
    let remove_carol = format!("{members}/{}", carol.id);
    assert_eq!(call(del.clone(), &remove_carol, &bt, None).await.0, 403);
    assert_eq!(call(post.clone(), &members, &at, add("77777")).await.0, 404);
    assert_eq!(call(post.clone(), &members, &at, add(&bob.id)).await.0, 409);
    let (status, e) = call(post.clone(), &members, &at, Some(json!({"user": 1}))).await;
    assert_eq!((status, e["code"].as_str()), (400, Some("bad_request")));

    a.send(send_frame(&group, "a1", "before")).await;
    let m1 = a.expect("ack").await["msg_id"].clone();
    assert_eq!(b.expect("msg").await["msg_id"], m1);
    assert_eq!(c.expect("msg").await["msg_id"], m1);

    // Removed: nothing more reaches bob, and he may not send.
    assert_eq!(
        call(del.clone(), &format!("{members}/{}", bob.id), &at, None)
            .await
            .0,
        204
    );
    a.send(send_frame(&group, "a2", "after")).await;
    let m2 = a.expect("ack").await["msg_id"].clone();
    assert_eq!(c.expect("msg").await["msg_id"], m2);
    assert!(
        b.quiet("msg", Duration::from_millis(500)).await,
        "bob was removed"
    );
    b.send(send_frame(&group, "b1", "still here?")).await;
    assert_eq!(b.expect("error").await["code"], "forbidden");
    assert_eq!(
        get(&s.url, &bt, &format!("/v1/groups/{group}")).await.0,
        403
    );

    // Bob scrolls back to his removal and no further; carol sees both.
    let ids = |v: &Value| -> Vec<Value> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["msg_id"].clone())
            .collect()
    };
    eventually("carol's history has both", WAIT, || async {
        let (status, v) = get(&s.url, &ct, &history).await;
        (status == 200 && ids(&v) == vec![m2.clone(), m1.clone()]).then_some(())
    })
    .await;
    let (status, v) = get(&s.url, &bt, &history).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&v), vec![m1.clone()]);
    // The group is in both lists, bob's stopping at his removal.
    let entry = |v: &Value| {
        let e = &v["conversations"][0];
        (
            e["conversation_id"].clone(),
            e["last_message"]["msg_id"].clone(),
            e["unread"].clone(),
        )
    };
    let carols = get(&s.url, &ct, "/v1/conversations").await.1;
    assert_eq!(entry(&carols), (json!(cid), m2.clone(), json!(2)));
    let bobs = get(&s.url, &bt, "/v1/conversations").await.1;
    assert_eq!(entry(&bobs), (json!(cid), m1.clone(), json!(1)));

    // Carol leaves; alice renames. A bad name is refused.
    assert_eq!(call(del.clone(), &remove_carol, &ct, None).await.0, 204);
    assert_eq!(
        get(&s.url, &ct, &format!("/v1/groups/{group}")).await.0,
        403
    );
    let patch = reqwest::Method::PATCH;
    let url = format!("{}/v1/groups/{group}", s.url);
    let (status, v) = call(patch.clone(), &url, &at, Some(json!({"name": "renamed"}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["members"], json!([{"user_id": alice.id, "admin": true}]));
    assert_eq!(
        call(patch, &url, &at, Some(json!({"name": "  "}))).await.0,
        400
    );

    // Added back, bob gets what is sent from now on.
    assert_eq!(call(post, &members, &at, add(&bob.id)).await.0, 204);
    a.send(send_frame(&group, "a3", "welcome back")).await;
    let m3 = a.expect("ack").await["msg_id"].clone();
    assert_eq!(b.expect("msg").await["msg_id"], m3);
    assert!(
        c.quiet("msg", Duration::from_millis(300)).await,
        "carol left"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_members_and_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let ([alice, bob, carol], [at, bt, ct]) = three_signed_in(&s.url).await;
    let group = create_group(&s.url, &at, "typists", &[&bob.id, &carol.id]).await;
    let cid = format!("g:{group}");
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    let mut c = Client::connect(&s.url, &ct).await;

    a.send(json!({"type": "typing", "conversation_id": cid}))
        .await;
    let want = json!({"type": "typing", "conversation_id": cid, "user_id": alice.id});
    assert_eq!(b.expect("typing").await, want);
    assert_eq!(c.expect("typing").await, want);
    assert!(
        a.quiet("typing", Duration::from_millis(200)).await,
        "not to the typist"
    );

    // A flood: past the burst, `rate_limited`, and the socket goes on.
    // (60 frames, so the counts hold however slowly a loaded machine
    // takes them: 5 pass at once and 2 a second after.)
    for _ in 0..60 {
        a.send(json!({"type": "typing", "conversation_id": cid}))
            .await;
    }
    let mut limited = 0;
    while limited < 20 {
        let e = a.expect("error").await;
        assert_eq!(e["code"], "rate_limited");
        limited += 1;
    }
    let mut got = 0;
    while !b.quiet("typing", Duration::from_millis(300)).await {
        got += 1;
    }
    assert!(got <= 30, "bob got {got} of 60");
    let ack = a.say(&bob.id, "after-flood", "still connected").await;
    assert_eq!(ack["conversation_id"], direct(&alice.id, &bob.id));
    // Typing is never stored: scrollback holds the one message only.
    let (_, v) = get(&s.url, &bt, &format!("/v1/conversations/{cid}/messages")).await;
    assert_eq!(v["messages"], json!([]));
    s.stop().await;
}

/// A group remembers at most 1,024 former members (their spans of
/// history); past that the one who left first is forgotten and reads the
/// group no more, while a later one still scrolls back to its span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn former_members_beyond_the_bound_are_forgotten_first_out_first() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), None).await;
    register(&s.url, "alice").await;
    let (at, _) = login(&s.url, "alice", None).await;
    // 1,023 members (a full group with Alice), then two more.
    let ids: Vec<String> = futures::stream::iter(0..1025)
        .map(|i| {
            let url = s.url.clone();
            async move { register(&url, &format!("m{i:04}")).await.id }
        })
        .buffered(8)
        .collect()
        .await;
    let (first, rest) = ids.split_at(1023);
    let members: Vec<&str> = first.iter().map(String::as_str).collect();
    let group = create_group(&s.url, &at, "crowd", &members).await;
    let mut a = Client::connect(&s.url, &at).await;
    a.send(send_frame(&group, "a1", "hello all")).await;
    a.expect("ack").await;
    let del = |who: &str| {
        let (url, at) = (s.url.clone(), at.clone());
        let path = format!("{url}/v1/groups/{group}/members/{who}");
        async move { call(reqwest::Method::DELETE, &path, &at, None).await.0 }
    };
    // m0000 leaves first, then the others, then the two latecomers join and
    // leave: 1,025 former members.
    assert_eq!(del(&ids[0]).await, 204);
    let gone: Vec<u16> = futures::stream::iter(&ids[1..1023])
        .map(|who| del(who))
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(gone.iter().all(|&s| s == 204), "{gone:?}");
    let members_url = format!("{}/v1/groups/{group}/members", s.url);
    for who in rest {
        let add = Some(json!({"user_id": who}));
        let (status, v) = call(reqwest::Method::POST, &members_url, &at, add).await;
        assert_eq!(status, 204, "{v}");
        assert_eq!(del(who).await, 204);
    }
    let history = format!("/v1/conversations/g:{group}/messages");
    let (t0, _) = login(&s.url, "m0000", None).await;
    assert_eq!(get(&s.url, &t0, &history).await.0, 403, "forgotten");
    let (t1, _) = login(&s.url, "m0001", None).await;
    let (status, page) = get(&s.url, &t1, &history).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["body"]["text"], "hello all");
}
