//! Property tests of the WebSocket frame reader the edge runs on every
//! client text frame (the short, in-CI companion of the `client_frame`
//! fuzz target): any text gives a frame or a refusal, never a panic, and
//! what it accepts reads back the same after a re-serialize.

use parley_schemas::wire::{parse_client_frame, ClientFrame, MAX_FRAME_BYTES};
use proptest::prelude::*;

/// Valid frames of every type, as clients write them.
fn valid() -> impl Strategy<Value = String> {
    let id = "[1-9][0-9]{0,17}";
    prop_oneof![
        (".{1,64}", id, ".{0,100}").prop_map(|(c, to, t)| serde_json::json!(
            {"type": "send", "client_msg_id": c, "to": {"user": to}, "body": {"text": t}}
        )
        .to_string()),
        (id, id).prop_map(|(g, m)| serde_json::json!(
            {"type": "receipt", "conversation_id": format!("g:{g}"), "msg_id": m, "status": "read"}
        )
        .to_string()),
        proptest::option::of(any::<u64>()).prop_map(|s| match s {
            Some(s) => format!(r#"{{"type":"sync","since":{s}}}"#),
            None => r#"{"type":"sync"}"#.to_owned(),
        }),
        any::<u64>().prop_map(|s| format!(r#"{{"type":"received","seq":{s}}}"#)),
        any::<bool>().prop_map(|a| format!(r#"{{"type":"heartbeat","active":{a}}}"#)),
    ]
}

fn check(text: &str) {
    if let Ok(frame) = parse_client_frame(text) {
        let again = serde_json::to_string(&frame).unwrap();
        assert_eq!(parse_client_frame(&again).ok(), Some(frame), "{text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn valid_frames_are_read(text in valid()) {
        let frame = parse_client_frame(&text);
        prop_assert!(frame.is_ok(), "{text}: {frame:?}");
        check(&text);
    }

    #[test]
    fn any_text_is_a_frame_or_a_refusal(text in ".{0,300}") {
        check(&text);
    }

    #[test]
    fn damaged_frames_are_refused_or_read_whole(
        text in valid(),
        at in any::<prop::sample::Index>(),
        junk in ".{0,4}",
        cut in any::<bool>(),
    ) {
        let mut s: Vec<char> = text.chars().collect();
        let i = at.index(s.len() + 1);
        if cut { s.truncate(i) } else { s.splice(i..i, junk.chars()); }
        check(&s.into_iter().collect::<String>());
    }
}

#[test]
fn an_oversized_frame_is_refused_as_too_large_before_parsing() {
    let text = format!(
        r#"{{"type":"sync","pad":"{}"}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    let refused = parse_client_frame(&text).unwrap_err();
    assert!(refused.too_large);
    // The reference of a send that parses as JSON but not as a frame.
    let refused = parse_client_frame(r#"{"type":"send","client_msg_id":"c1"}"#).unwrap_err();
    assert_eq!(refused.reference.as_deref(), Some("c1"));
    assert!(matches!(
        parse_client_frame(r#"{"type":"received","seq":3}"#),
        Ok(ClientFrame::Received(_))
    ));
}

/// The chunk range and invite token parsers (fuzzed in `schemas/fuzz`,
/// target `upload_invite`): what they take and refuse.
#[test]
fn chunk_ranges_and_invite_tokens() {
    use parley_schemas::group::parse_invite_token;
    use parley_schemas::ids::GroupId;
    use parley_schemas::media::parse_content_range;
    assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, Some(100))));
    assert_eq!(parse_content_range("bytes 10-19/*"), Some((10, None)));
    for bad in [
        "bytes 9-1/100",
        "items 0-1/2",
        "bytes 0-1",
        "bytes -1/2",
        "bytes 0-18446744073709551616/1",
        "",
    ] {
        assert_eq!(parse_content_range(bad), None, "{bad}");
    }
    assert_eq!(
        parse_invite_token("42.s3cret"),
        Some((GroupId(42), "s3cret"))
    );
    let long = format!("42.{}", "x".repeat(65));
    for bad in ["42.", ".x", "x.y", "42", long.as_str(), "-1.x"] {
        assert_eq!(parse_invite_token(bad), None, "{bad}");
    }
}
