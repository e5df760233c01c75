//! Feeds arbitrary text to the two parsers of what a signed-in user sends
//! outside frames: a resumable chunk's `Content-Range` and an invite
//! token. Neither may panic; a range accepted is well formed (its start
//! written back reads the same), and a token accepted reads back the same
//! from its parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_schemas::group::parse_invite_token;
use parley_schemas::media::parse_content_range;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((start, total)) = parse_content_range(text) {
        let (range, _) = text["bytes ".len()..].split_once('/').unwrap();
        let (_, end) = range.split_once('-').unwrap();
        let total = total.map_or("*".to_owned(), |t| t.to_string());
        let again = format!("bytes {start}-{end}/{total}");
        assert_eq!(parse_content_range(&again), parse_content_range(text));
    }
    if let Some((group, secret)) = parse_invite_token(text) {
        assert!(!secret.is_empty() && secret.len() <= 64);
        let again = format!("{group}.{secret}");
        assert_eq!(parse_invite_token(&again), Some((group, secret)));
    }
});
