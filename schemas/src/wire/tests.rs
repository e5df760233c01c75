//! The wire types against JSON copied from `shared/protocol.md`.

use super::*;
use crate::ids::{ConversationId, MessageId};
use serde_json::{json, Value};

fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap()
}

#[test]
fn a_shared_msg_renders_as_serde_does() {
    let frame = MsgFrame {
        seq: Some(9),
        msg_id: MessageId(77),
        conversation_id: ConversationId::group(GroupId(5)),
        from: UserId(3),
        to: Recipient::Group(GroupId(5)),
        body: Body::Text("quote \" and \u{e9}".into()),
        ts: 1_700_000_000_000,
        extra: Default::default(),
    };
    let shared = SharedMsg::new(frame.clone());
    assert_eq!(shared.frame.seq, None);
    for seq in [Some(1), Some(u64::MAX), None] {
        let expected = serde_json::to_string(&ServerFrame::Msg(MsgFrame {
            seq,
            ..frame.clone()
        }))
        .unwrap();
        assert_eq!(shared.render(seq), expected);
    }
}

#[test]
fn client_frames_parse_as_the_spec_writes_them() {
    let send: ClientFrame = serde_json::from_value(json!({
        "type": "send", "client_msg_id": "c1", "to": {"user": "42"},
        "body": {"text": "hi"}, "from": "999"
    }))
    .unwrap();
    assert_eq!(
        send,
        ClientFrame::Send(SendFrame {
            client_msg_id: "c1".into(),
            to: Recipient::User(UserId(42)),
            body: Body::Text("hi".into()),
            reply_to: None,
            forwarded: false,
        })
    );
    let media: ClientFrame = serde_json::from_value(json!({
        "type": "send", "client_msg_id": "c2", "to": {"group": "7"},
        "body": {"media": {"media_id": "m1", "caption": "look"}}
    }))
    .unwrap();
    assert!(matches!(
        media,
        ClientFrame::Send(SendFrame { to: Recipient::Group(GroupId(7)), body: Body::Media(Media { ref caption, mime: None, .. }), .. })
            if caption.as_deref() == Some("look")
    ));
    let receipt: ClientFrame = serde_json::from_value(json!({
        "type": "receipt", "conversation_id": "d:1:2", "msg_id": "123", "status": "read"
    }))
    .unwrap();
    assert_eq!(
        receipt,
        ClientFrame::Receipt(ReceiptFrame {
            conversation_id: ConversationId::direct(UserId(1), UserId(2)),
            msg_id: MessageId(123),
            status: ReceiptStatus::Read,
        })
    );
    let sync: ClientFrame = serde_json::from_value(json!({"type": "sync"})).unwrap();
    assert_eq!(sync, ClientFrame::Sync(SyncFrame { since: None }));
    let sync: ClientFrame = serde_json::from_value(json!({"type": "sync", "since": 5})).unwrap();
    assert_eq!(sync, ClientFrame::Sync(SyncFrame { since: Some(5) }));
    let received: ClientFrame =
        serde_json::from_value(json!({"type": "received", "seq": 9})).unwrap();
    assert_eq!(received, ClientFrame::Received(ReceivedFrame { seq: 9 }));
    assert!(serde_json::from_value::<ClientFrame>(json!({"type": "received"})).is_err());
    let hb: ClientFrame =
        serde_json::from_value(json!({"type": "heartbeat", "active": false})).unwrap();
    assert_eq!(hb, ClientFrame::Heartbeat(HeartbeatFrame { active: false }));
    let Body::Media(m) =
        serde_json::from_value::<Body>(json!({"media": {"media_id": "m1"}})).unwrap()
    else {
        panic!("media body")
    };
    assert_eq!(
        to_value(&Body::Media(m)),
        json!({"media": {"media_id": "m1"}}),
        "absent fields omitted"
    );
    // An e2e body comes back as it was sent; only an object is one.
    let e2e = json!({"e2e": {"v": 1, "ciphertexts": {"5:1": {"type": 0, "body": "AAE"}}}});
    let body: Body = serde_json::from_value(e2e.clone()).unwrap();
    assert!(matches!(body, Body::E2e(_)));
    assert_eq!(to_value(&body), e2e);
    assert!(serde_json::from_value::<Body>(json!({"e2e": "AAE"})).is_err());
    assert!(serde_json::from_value::<Body>(json!({"e2e": [1]})).is_err());
    let typing: ClientFrame =
        serde_json::from_value(json!({"type": "typing", "conversation_id": "g:3"})).unwrap();
    assert!(matches!(typing, ClientFrame::Typing(_)));
    let history: ClientFrame = serde_json::from_value(
        json!({"type": "history", "conversation_id": "g:3", "before": "99", "limit": 50}),
    )
    .unwrap();
    assert_eq!(
        history,
        ClientFrame::History(HistoryRequest {
            conversation_id: ConversationId::group(GroupId(3)),
            before: Some(MessageId(99)),
            limit: Some(50),
        })
    );
}

#[test]
fn bad_client_frames_are_refused() {
    for bad in [
        json!({"type": "nope"}),
        json!({"client_msg_id": "c1"}),
        json!({"type": "send", "to": {"user": "1"}, "body": {"text": "x"}}),
        json!({"type": "send", "client_msg_id": "c", "to": {"user": 1}, "body": {"text": "x"}}),
        json!({"type": "send", "client_msg_id": "c", "to": {"bot": "1"}, "body": {"text": "x"}}),
        json!({"type": "send", "client_msg_id": "c", "to": {"user": "1"}, "body": {"html": "x"}}),
        json!({"type": "receipt", "conversation_id": "d:2:1", "msg_id": "1", "status": "read"}),
        json!({"type": "receipt", "conversation_id": "d:1:2", "msg_id": "1", "status": "seen"}),
        json!({"type": "heartbeat", "active": "yes"}),
        json!({"type": "sync", "since": -1}),
    ] {
        assert!(
            serde_json::from_value::<ClientFrame>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn server_frames_have_the_spec_shapes() {
    let ack = ServerFrame::Ack(Ack {
        client_msg_id: "c1".into(),
        msg_id: MessageId(77),
        conversation_id: ConversationId::direct(UserId(2), UserId(1)),
        ts: 1_700_000_000_000,
    });
    assert_eq!(
        to_value(&ack),
        json!({"type": "ack", "client_msg_id": "c1", "msg_id": "77",
               "conversation_id": "d:1:2", "ts": 1_700_000_000_000u64})
    );
    let msg = ServerFrame::Msg(MsgFrame {
        seq: Some(3),
        msg_id: MessageId(77),
        conversation_id: ConversationId::direct(UserId(1), UserId(2)),
        from: UserId(1),
        to: Recipient::User(UserId(2)),
        body: Body::Text("hi".into()),
        ts: 5,
        extra: Default::default(),
    });
    assert_eq!(
        to_value(&msg),
        json!({"type": "msg", "seq": 3, "msg_id": "77", "conversation_id": "d:1:2",
               "from": "1", "to": {"user": "2"}, "body": {"text": "hi"}, "ts": 5})
    );
    let status = ServerFrame::Status(StatusFrame {
        conversation_id: ConversationId::group(GroupId(9)),
        msg_id: MessageId(1),
        status: ReceiptStatus::Delivered,
        by: UserId(4),
        ts: 6,
        all: false,
    });
    assert_eq!(
        to_value(&status),
        json!({"type": "status", "conversation_id": "g:9", "msg_id": "1",
               "status": "delivered", "by": "4", "ts": 6})
    );
    let ServerFrame::Status(mut all) = status else {
        unreachable!()
    };
    all.all = true;
    assert_eq!(
        to_value(&all)["all"],
        json!(true),
        "the aggregate says so; one member's status has no `all`"
    );
    let presence = ServerFrame::Presence(PresenceFrame {
        user_id: UserId(4),
        online: false,
        last_seen: Some(10),
    });
    assert_eq!(
        to_value(&presence),
        json!({"type": "presence", "user_id": "4", "online": false, "last_seen": 10})
    );
    let typing = ServerFrame::Typing(TypingNotice {
        conversation_id: ConversationId::group(GroupId(9)),
        user_id: UserId(4),
    });
    assert_eq!(
        to_value(&typing),
        json!({"type": "typing", "conversation_id": "g:9", "user_id": "4"})
    );
    let mut page = HistoryPage {
        conversation_id: ConversationId::group(GroupId(9)),
        messages: vec![],
        more: false,
    };
    let history = ServerFrame::History(page.clone());
    assert_eq!(
        to_value(&history),
        json!({"type": "history", "conversation_id": "g:9", "messages": []})
    );
    // `more` only where a page was cut short.
    page.more = true;
    assert_eq!(
        to_value(&ServerFrame::History(page)),
        json!({"type": "history", "conversation_id": "g:9", "messages": [], "more": true})
    );
    let err = ServerFrame::Error(ErrorFrame {
        code: ErrorCode::TooLarge,
        message: "text over 64 KiB".into(),
        reference: Some("c1".into()),
    });
    assert_eq!(
        to_value(&err),
        json!({"type": "error", "code": "too_large", "message": "text over 64 KiB", "ref": "c1"})
    );
}

#[test]
fn error_codes_are_the_spec_strings() {
    for code in ErrorCode::ALL {
        assert_eq!(to_value(&code), json!(code.as_str()));
    }
    let names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "bad_request",
            "unauthorized",
            "forbidden",
            "not_found",
            "conflict",
            "too_large",
            "rate_limited",
            "unavailable",
            "internal"
        ]
    );
}

#[test]
fn http_bodies_have_the_spec_shapes() {
    let s: CreateSession =
        serde_json::from_value(json!({"username": "alice", "password": "pw", "device_id": "3"}))
            .unwrap();
    assert_eq!(s.device_id, Some(crate::ids::DeviceId(3)));
    assert_eq!(
        to_value(&Session {
            token: "t".into(),
            user_id: UserId(1),
            device_id: crate::ids::DeviceId(3),
            refresh_token: "r".into(),
            expires_in: 900,
        }),
        json!({"token": "t", "user_id": "1", "device_id": "3", "refresh_token": "r", "expires_in": 900})
    );
    assert_eq!(
        to_value(&UserCreated { user_id: UserId(1) }),
        json!({"user_id": "1"})
    );
    assert_eq!(
        to_value(&GroupCreated {
            group_id: GroupId(5),
            conversation_id: ConversationId::group(GroupId(5))
        }),
        json!({"group_id": "5", "conversation_id": "g:5"})
    );
    assert_eq!(
        to_value(&ErrorBody {
            code: ErrorCode::Conflict,
            message: "taken".into()
        }),
        json!({"code": "conflict", "message": "taken"})
    );
    let p = PresenceFrame {
        user_id: UserId(1),
        online: true,
        last_seen: None,
    };
    assert_eq!(
        to_value(&p),
        json!({"user_id": "1", "online": true, "last_seen": null})
    );
}
