//! Property tests of the binary envelope: every event round-trips, and no
//! damaged input panics or decodes to something else silently.

use parley_schemas::codec::{self, DecodeError, MAGIC, VERSION};
use parley_schemas::event::*;
use parley_schemas::group::GroupChange;
use parley_schemas::ids::*;
use parley_schemas::wire::{Body, E2e, Media, ReceiptStatus, Recipient};
use proptest::prelude::*;

fn user() -> impl Strategy<Value = UserId> {
    any::<u64>().prop_map(UserId)
}

fn conversation() -> impl Strategy<Value = ConversationId> {
    prop_oneof![
        (user(), user()).prop_map(|(a, b)| ConversationId::direct(a, b)),
        any::<u64>().prop_map(|g| ConversationId::group(GroupId(g))),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        ".{0,200}".prop_map(Body::Text),
        (
            ".{1,40}",
            proptest::option::of("[a-z]+/[a-z]+"),
            proptest::option::of(".{0,50}"),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<(u32, u32)>()),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(media_id, mime, caption, size, image, thumbnail)| {
                Body::Media(Media {
                    media_id,
                    mime,
                    caption,
                    size,
                    width: image.map(|s| s.0),
                    height: image.map(|s| s.1),
                    thumbnail,
                })
            }),
        prop::collection::btree_map("[a-z:0-9]{1,12}", ".{0,80}", 0..6).prop_map(|m| {
            Body::E2e(E2e(m
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect()))
        }),
    ]
}

fn status() -> impl Strategy<Value = ReceiptStatus> {
    prop_oneof![Just(ReceiptStatus::Delivered), Just(ReceiptStatus::Read)]
}

fn message() -> impl Strategy<Value = MessageSent> {
    (
        any::<u64>(),
        conversation(),
        user(),
        any::<u64>(),
        prop_oneof![
            user().prop_map(Recipient::User),
            any::<u64>().prop_map(|g| Recipient::Group(GroupId(g)))
        ],
        "[ -~]{1,64}",
        body(),
        any::<u64>(),
    )
        .prop_map(
            |(id, conversation, from, dev, to, client_msg_id, body, ts)| MessageSent {
                msg_id: MessageId(id),
                conversation,
                from,
                from_device: DeviceId(dev),
                to,
                client_msg_id,
                body,
                ts,
                reply_to: None,
                forwarded: false,
            },
        )
}

fn group_change() -> impl Strategy<Value = GroupChange> {
    prop_oneof![
        (".{0,20}", proptest::collection::vec(user(), 0..5))
            .prop_map(|(name, members)| GroupChange::Created { name, members }),
        user().prop_map(GroupChange::Added),
        user().prop_map(GroupChange::Removed),
        ".{0,20}".prop_map(GroupChange::Renamed),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (any::<u64>(), user(), group_change(), any::<u64>()).prop_map(|(g, by, change, ts)| {
            Event::Group(GroupEvent {
                group: GroupId(g),
                by,
                change,
                ts,
            })
        }),
        message().prop_map(Event::MessageSent),
        (
            conversation(),
            user(),
            any::<u64>(),
            any::<u64>(),
            status(),
            any::<u64>()
        )
            .prop_map(
                |(conversation, by, d, up, status, ts)| Event::Receipt(Receipt {
                    conversation,
                    by,
                    device: DeviceId(d),
                    up_to: MessageId(up),
                    status,
                    ts,
                })
            ),
        (
            user(),
            any::<u64>(),
            any::<bool>(),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(
                |(user, d, active, closing, ts)| Event::Heartbeat(Heartbeat {
                    user,
                    device: DeviceId(d),
                    active,
                    closing,
                    ts
                })
            ),
        (user(), any::<u64>(), message())
            .prop_map(|(user, seq, message)| Event::InboxItem(InboxItem { user, seq, message })),
        (
            user(),
            conversation(),
            any::<u64>(),
            status(),
            user(),
            any::<u64>()
        )
            .prop_map(|(to, conversation, m, status, by, ts)| Event::Status(
                StatusUpdate {
                    to,
                    conversation,
                    msg_id: MessageId(m),
                    status,
                    by,
                    ts,
                }
            )),
        (user(), any::<bool>(), any::<u64>(), any::<u64>()).prop_map(
            |(user, online, last_seen, ts)| {
                Event::Presence(PresenceChanged {
                    user,
                    online,
                    last_seen,
                    ts,
                })
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_event_round_trips(e in event()) {
        let bytes = codec::encode(&e);
        prop_assert_eq!(bytes[0], MAGIC);
        prop_assert_eq!(bytes[1], VERSION);
        prop_assert_eq!(codec::decode(&bytes), Ok(e));
    }

    #[test]
    fn every_strict_prefix_is_an_error(e in event(), cut in any::<prop::sample::Index>()) {
        let bytes = codec::encode(&e);
        let n = cut.index(bytes.len());
        prop_assert!(codec::decode(&bytes[..n]).is_err());
    }

    #[test]
    fn trailing_bytes_are_an_error(e in event(), extra in prop::collection::vec(any::<u8>(), 1..16)) {
        let mut bytes = codec::encode(&e);
        bytes.extend(extra);
        prop_assert!(matches!(codec::decode(&bytes), Err(DecodeError::Trailing(_))));
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode(&bytes);
        let mut framed = vec![MAGIC, VERSION];
        framed.extend(&bytes);
        let _ = codec::decode(&framed);
    }

    #[test]
    fn a_flipped_bit_never_panics(e in event(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = codec::encode(&e);
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let _ = codec::decode(&bytes);
    }
}

#[test]
fn header_errors_are_named() {
    assert_eq!(codec::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(codec::decode(&[MAGIC]), Err(DecodeError::Empty));
    assert_eq!(
        codec::decode(&[0x00, VERSION, 0]),
        Err(DecodeError::BadMagic(0))
    );
    assert_eq!(
        codec::decode(&[MAGIC, 9, 0]),
        Err(DecodeError::UnknownVersion(9))
    );
    // An event kind this build does not know (index past the last variant).
    assert!(matches!(
        codec::decode(&[MAGIC, VERSION, 0x7F]),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn a_text_message_stays_compact() {
    let e = Event::MessageSent(MessageSent {
        msg_id: MessageIdGenerator::new(1).unwrap().next_id(),
        conversation: ConversationId::direct(UserId(1_000_001), UserId(2_000_002)),
        from: UserId(1_000_001),
        from_device: DeviceId(1),
        to: Recipient::User(UserId(2_000_002)),
        client_msg_id: "c-0001".into(),
        body: Body::Text("x".repeat(150)),
        ts: now_ms(),
        reply_to: None,
        forwarded: false,
    });
    let n = codec::encode(&e).len();
    assert!(n < 200, "150 bytes of text encoded in {n} bytes");
}

/// A media message with a marked caption, of `size` bytes.
fn captioned(size: Option<u64>) -> MessageSent {
    MessageSent {
        msg_id: MessageId(7),
        conversation: ConversationId::direct(UserId(1), UserId(2)),
        from: UserId(1),
        from_device: DeviceId(1),
        to: Recipient::User(UserId(2)),
        client_msg_id: "c".into(),
        body: Body::Media(Media {
            media_id: "m".into(),
            mime: None,
            caption: Some("CAPTION-MARK".into()),
            size,
            ..Media::default()
        }),
        ts: 9,
        reply_to: None,
        forwarded: false,
    }
}

/// Records written before a message carried `reply_to` and `forwarded`
/// (envelope version 2), and before the media body carried its image's
/// size (version 1), still decode, the new fields absent.
#[test]
fn version_1_and_2_records_still_decode() {
    let m = captioned(None);
    let v3 = codec::encode(&Event::MessageSent(m.clone()));
    assert_eq!(v3[1], 3);
    // Version 2 is version 3 without the two absent fields at the end.
    assert_eq!(&v3[v3.len() - 2..], &[0, 0]);
    let mut v2 = v3[..v3.len() - 2].to_vec();
    v2[1] = 2;
    assert_eq!(codec::decode(&v2).unwrap(), Event::MessageSent(m.clone()));
    // Version 1 is version 2 without the four absent fields after the
    // caption.
    let at = v2.windows(12).position(|w| w == b"CAPTION-MARK").unwrap() + 12;
    assert_eq!(&v2[at..at + 4], &[0, 0, 0, 0]);
    let mut v1 = [&v2[..at], &v2[at + 4..]].concat();
    v1[1] = 1;
    assert_eq!(codec::decode(&v1).unwrap(), Event::MessageSent(m.clone()));
    // The layout in force is back to the current one after a decode.
    assert_eq!(codec::layout(), VERSION);
    // A reply that was forwarded keeps both marks.
    let reply = MessageSent {
        reply_to: Some(MessageId(5)),
        forwarded: true,
        ..m
    };
    let e = Event::MessageSent(reply);
    assert_eq!(codec::decode(&codec::encode(&e)).unwrap(), e);
}

/// A build can write an older version (the first step of a release that
/// changes a layout): the bytes are that version's, as hand-cut above,
/// and decode to the event without what the older layout has no place for.
#[test]
fn older_versions_are_written_as_they_were() {
    let m = MessageSent {
        reply_to: Some(MessageId(5)),
        forwarded: true,
        ..captioned(Some(1234))
    };
    let e = Event::MessageSent(m.clone());
    let write = |version| {
        let mut out = Vec::new();
        codec::encode_as(&e, version, &mut out);
        out
    };
    let (v1, v2, v3) = (write(1), write(2), write(3));
    assert_eq!((v1[1], v2[1], v3[1]), (1, 2, 3));
    assert_eq!(codec::decode(&v3).unwrap(), e);
    let without_v3 = MessageSent {
        reply_to: None,
        forwarded: false,
        ..m.clone()
    };
    assert_eq!(
        codec::decode(&v2).unwrap(),
        Event::MessageSent(without_v3.clone())
    );
    let Body::Media(media) = &without_v3.body else {
        unreachable!()
    };
    let without_v2 = MessageSent {
        body: Body::Media(Media {
            size: None,
            ..media.clone()
        }),
        ..without_v3
    };
    assert_eq!(codec::decode(&v1).unwrap(), Event::MessageSent(without_v2));
    assert!(v1.len() < v2.len() && v2.len() < v3.len());
    assert_eq!(codec::layout(), VERSION, "the layout is back after writing");
    // This process writes the current version unless told otherwise, and
    // never one it could not read.
    assert_eq!(codec::encode(&e)[1], VERSION);
    assert!(codec::write_version(VERSION + 1).is_err());
    assert!(codec::write_version(0).is_err());
}
