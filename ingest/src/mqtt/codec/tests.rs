use super::topics::{client_frame, subscription};
use super::*;
use rmqtt_codec::types::QoS;
use std::num::NonZeroU16;

/// A client's packets, written by the crate's own codec for that version.
fn client_bytes(packets: Vec<MqttPacket>) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        let mut codec = match &p {
            MqttPacket::V3(_) => MqttCodec::V3(v3::Codec::new(0)),
            _ => MqttCodec::V5(v5::Codec::new(0, 0)),
        };
        codec.encode(p, &mut buf).unwrap();
    }
    buf
}

fn v3_connect(clean: bool) -> v3::Connect {
    v3::Connect {
        protocol: Default::default(),
        clean_session: clean,
        keep_alive: 30,
        last_will: None,
        client_id: "7".into(),
        username: Some("alice".into()),
        password: Some(Bytes::from_static(b"secret")),
        cert: None,
    }
}

#[test]
fn a_v3_session_reads_connect_then_its_packets() {
    let publish = rmqtt_codec::types::Publish {
        dup: false,
        retain: false,
        qos: QoS::AtLeastOnce,
        topic: "parley/send".into(),
        packet_id: NonZeroU16::new(9),
        payload: Bytes::from_static(b"{}"),
        properties: None,
    };
    let mut buf = client_bytes(vec![
        MqttPacket::V3(v3::Packet::Connect(Box::new(v3_connect(false)))),
        MqttPacket::V3(v3::Packet::Publish(Box::new(publish))),
        MqttPacket::V3(v3::Packet::PingRequest),
    ]);
    let mut codec = Codec::new(1024);
    let Some(In::Connect(c)) = codec.decode(&mut buf).unwrap() else {
        panic!("a connect first")
    };
    assert_eq!(codec.version(), Some(Version::V3));
    assert_eq!(
        (c.client_id.as_str(), c.username.as_deref(), c.resume),
        ("7", Some("alice"), true)
    );
    let Some(In::Publish(p)) = codec.decode(&mut buf).unwrap() else {
        panic!("then the publish")
    };
    assert_eq!(
        (p.topic.as_str(), p.qos, p.packet_id),
        ("parley/send", 1, Some(9))
    );
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(In::PingReq));
    assert_eq!(codec.decode(&mut buf).unwrap(), None);

    // A 3.1.1 server refuses with CONNACK codes and cannot send DISCONNECT.
    let mut out = BytesMut::new();
    codec
        .encode(
            Out::Disconnect {
                reason: Reason::NotAuthorized,
                text: None,
            },
            &mut out,
        )
        .unwrap();
    assert!(out.is_empty());
    codec
        .encode(
            Out::SubAck {
                packet_id: 3,
                results: vec![Ok(1), Err(Reason::NotAuthorized)],
            },
            &mut out,
        )
        .unwrap();
    assert_eq!(&out[..], &[0x90, 4, 0, 3, 1, 0x80]);
}

#[test]
fn a_v5_session_keeps_its_properties() {
    let connect = v5::Connect {
        clean_start: true,
        keep_alive: 60,
        receive_max: NonZeroU16::new(10),
        client_id: "".into(),
        username: Some("token".into()),
        password: Some(Bytes::from_static(b"t")),
        ..Default::default()
    };
    let mut buf = client_bytes(vec![MqttPacket::V5(v5::Packet::Connect(Box::new(connect)))]);
    let mut codec = Codec::new(1024);
    let Some(In::Connect(c)) = codec.decode(&mut buf).unwrap() else {
        panic!("a connect")
    };
    assert_eq!(codec.version(), Some(Version::V5));
    assert_eq!(
        (c.receive_max, c.resume, c.keep_alive),
        (Some(10), false, 60)
    );

    let mut out = BytesMut::new();
    codec
        .encode(
            Out::PubAck {
                packet_id: 5,
                refused: Some(Reason::QuotaExceeded),
                text: None,
            },
            &mut out,
        )
        .unwrap();
    // PUBACK, packet 5, reason 0x97, no properties.
    assert_eq!(&out[..], &[0x40, 4, 0, 5, 0x97, 0]);
}

#[test]
fn bad_bytes_are_refused_with_a_reason() {
    let mut codec = Codec::new(1024);
    let mut garbage = BytesMut::from(&b"\x10\x0a\x00\x04HTTP\x04\x02\x00\x3c"[..]);
    let e = codec.decode(&mut garbage).unwrap_err();
    assert_eq!(e.reason, Reason::UnsupportedProtocolVersion);

    // Too large: refused from its header, before the body arrives.
    let mut buf = client_bytes(vec![MqttPacket::V3(v3::Packet::Connect(Box::new(
        v3_connect(true),
    )))]);
    let mut codec = Codec::new(64);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(In::Connect(_)))));
    let mut big = BytesMut::from(&[0x30u8, 0xff, 0x7f][..]);
    let e = codec.decode(&mut big).unwrap_err();
    assert_eq!(e.reason, Reason::PacketTooLarge);

    // A first packet that is not a CONNECT.
    let mut codec = Codec::new(64);
    let mut ping = BytesMut::from(&[0xc0u8, 0][..]);
    assert!(codec.decode(&mut ping).is_err());
}

#[test]
fn topics_carry_the_frames_named_after_them() {
    let f = client_frame("parley/send", br#"{"client_msg_id":"a"}"#).unwrap();
    let v: serde_json::Value = serde_json::from_str(&f.text).unwrap();
    assert_eq!((f.kind, f.client_msg_id.as_deref()), ("send", Some("a")));
    assert_eq!(v["type"], "send");
    assert_eq!(v["client_msg_id"], "a");
    assert_eq!(
        client_frame("parley/sync", b"").unwrap().text,
        r#"{"type":"sync"}"#
    );
    let e = client_frame("parley/send", br#"{"type":"typing"}"#).unwrap_err();
    assert_eq!(e.reason, Reason::PayloadFormatInvalid);
    let e = client_frame("parley/send", b"[1]").unwrap_err();
    assert_eq!(e.reason, Reason::PayloadFormatInvalid);
    let e = client_frame("parley/send", b"\xff").unwrap_err();
    assert_eq!(e.reason, Reason::PayloadFormatInvalid);
    let e = client_frame("parley/users/42", b"{}").unwrap_err();
    assert_eq!(e.reason, Reason::TopicNameInvalid);

    assert_eq!(subscription("parley/me"), Ok(()));
    assert_eq!(subscription("#"), Err(Reason::NotAuthorized));
    assert_eq!(subscription("parley/+"), Err(Reason::NotAuthorized));
    assert_eq!(subscription("parley/users/42"), Err(Reason::NotAuthorized));
    assert_eq!(subscription("weather"), Err(Reason::TopicFilterInvalid));
}
