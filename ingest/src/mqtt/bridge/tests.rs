use super::*;

fn msg(seq: u64) -> String {
    serde_json::json!({"type": "msg", "seq": seq, "body": {"text": "hi"}}).to_string()
}

fn sent_packet(a: &Actions) -> u16 {
    match &a.out[..] {
        [Out::Publish(p)] if p.qos == 1 && p.topic == ME => p.packet_id.unwrap(),
        other => panic!("one QoS 1 publish to parley/me, not {other:?}"),
    }
}

#[test]
fn the_cursor_moves_only_past_what_the_client_acknowledged() {
    let mut i = Inflight::default();
    i.sent(1, 5);
    i.sent(2, 6);
    i.sent(3, 7);
    // Only below 5, which is still open (what the writer sent first is
    // the seq after the device's cursor, so below it is confirmed anyway).
    assert_eq!(i.acked(2), Some(4));
    assert_eq!(i.acked(1), Some(6));
    assert_eq!(i.acked(9), None, "an unknown packet moves nothing");
    // A dropped seq blocks the cursor until it is sent again and acked.
    i.held(8);
    i.sent(4, 9);
    assert_eq!(i.acked(4), None, "7 and 8 are open");
    assert_eq!(i.acked(3), Some(7));
    i.sent(5, 8);
    assert_eq!(i.acked(5), Some(9));
    assert_eq!(i.len(), 0);
}

#[test]
fn messages_wait_for_a_subscription_then_come_from_the_cursor() {
    let mut b = Bridge::new(Version::V3, false, 2);
    assert!(b.server_frame(msg(1)).out.is_empty(), "not subscribed");
    let a = b.subscribe(7, vec![("parley/me".into(), 2), ("#".into(), 1)]);
    assert_eq!(a.forward, vec![r#"{"type":"sync"}"#.to_owned()]);
    assert_eq!(
        a.out,
        vec![Out::SubAck {
            packet_id: 7,
            results: vec![Ok(1), Err(Reason::NotAuthorized)]
        }]
    );
    // The replay of seq 1 and a live seq 2: the window is full at two.
    let first = sent_packet(&b.server_frame(msg(1)));
    let second = sent_packet(&b.server_frame(msg(2)));
    assert!(b.full());
    let a = b.puback(second);
    assert_eq!(a.confirm, None, "1 is not acknowledged yet");
    let a = b.puback(first);
    assert_eq!(a.confirm, Some(2));
    assert!(!b.full());
}

#[test]
fn a_send_is_acknowledged_when_the_server_acks_it() {
    let mut b = Bridge::new(Version::V5, true, 8);
    let send = |id: u16, payload: &str, response: Option<&str>| Publish {
        topic: "parley/send".into(),
        qos: 1,
        packet_id: Some(id),
        retain: false,
        dup: false,
        payload: Bytes::from(payload.to_owned()),
        response_topic: response.map(str::to_owned),
        correlation: Some(Bytes::from_static(b"c1")),
    };
    let good = r#"{"client_msg_id":"m1","to":{"user":"2"},"body":{"text":"hi"}}"#;
    let a = b.publish(send(4, good, Some("parley/me")));
    assert!(a.out.is_empty(), "no PUBACK before the append is durable");
    assert_eq!(a.forward.len(), 1);
    let a = b.server_frame(
        serde_json::json!({"type": "ack", "client_msg_id": "m1", "msg_id": "9", "conversation_id": "c", "ts": 1})
            .to_string(),
    );
    assert!(matches!(
        a.out[0],
        Out::PubAck {
            packet_id: 4,
            refused: None,
            ..
        }
    ));
    match &a.out[1] {
        Out::Publish(p) => assert_eq!(p.correlation.as_deref(), Some(&b"c1"[..])),
        other => panic!("the ack to the response topic, not {other:?}"),
    }

    // Refused by the edge: MQTT 5 says why in the PUBACK.
    b.publish(send(5, good, None));
    let a = b.server_frame(
        serde_json::json!({"type": "error", "code": "forbidden", "message": "no", "ref": "m1"})
            .to_string(),
    );
    assert!(matches!(
        a.out[0],
        Out::PubAck {
            packet_id: 5,
            refused: Some(Reason::NotAuthorized),
            ..
        }
    ));

    // Not a send frame at all, or one without its id.
    let a = b.publish(send(6, "{\"to\":", None));
    assert!(matches!(
        a.out[0],
        Out::PubAck {
            packet_id: 6,
            refused: Some(Reason::PayloadFormatInvalid),
            ..
        }
    ));
    assert!(a.forward.is_empty());
    let a = b.publish(send(7, r#"{"to":{"user":"2"},"body":{"text":"x"}}"#, None));
    assert!(matches!(
        a.out[0],
        Out::PubAck {
            packet_id: 7,
            refused: Some(Reason::PayloadFormatInvalid),
            ..
        }
    ));

    // 3.1.1 cannot refuse: an unknown topic closes the connection.
    let mut v3 = Bridge::new(Version::V3, false, 8);
    let mut other = send(1, good, None);
    other.topic = "parley/users/2".into();
    assert_eq!(v3.publish(other).close.unwrap().0, Reason::TopicNameInvalid);
}
