//! Media: the id an upload gets, and the limits every role applies to
//! media the same way.
//!
//! A `media_id` names one upload, not its bytes: 128 random bits, as 32
//! lowercase hex digits on the wire. The bytes are stored once per
//! content (by their SHA-256), however often they are uploaded; see
//! `docs/protocol-additions.md` for why ids are per upload.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediaId(pub u128);

impl MediaId {
    pub fn random() -> MediaId {
        MediaId(rand::random())
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Why a string is not a media id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a media id is 32 lowercase hex digits, got {0:?}")]
pub struct BadMediaId(pub String);

impl FromStr for MediaId {
    type Err = BadMediaId;
    /// Only the canonical form, so each id has one string and a path-like
    /// or padded one is no id at all.
    fn from_str(s: &str) -> Result<MediaId, BadMediaId> {
        let ok = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| u128::from_str_radix(s, 16).ok())
            .flatten()
            .map(MediaId)
            .ok_or_else(|| BadMediaId(s.chars().take(80).collect()))
    }
}

impl Serialize for MediaId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_u128(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for MediaId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MediaId, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            u128::deserialize(d).map(MediaId)
        }
    }
}

/// A resumable chunk's `Content-Range: bytes START-END/TOTAL` (`TOTAL` may
/// be `*`) → `(START, TOTAL)`; `None` for anything else, an end before its
/// start included. Total on any input (fuzzed: `schemas/fuzz`).
pub fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
    if end < start {
        return None;
    }
    let total = match total {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// Where an upload's bytes are stored: by content.
pub fn blob_key(sha256_hex: &str) -> String {
    format!("blobs/{sha256_hex}")
}

/// Where the thumbnail of those bytes is stored.
pub fn thumbnail_key(sha256_hex: &str) -> String {
    format!("thumbs/{sha256_hex}")
}

/// Resumable uploads keep their session under `uploads/<upload_id>/`: a
/// `meta` blob and one blob per chunk.
/// Messages carrying one upload that are looked at to find who may fetch
/// it (and, under `until_delivered` retention, who must have): a file
/// forwarded into more chats than this counts the first.
pub const MAX_USES: usize = 1024;

pub const UPLOADS: &str = "uploads/";

/// Each resumable session is also named under its owner,
/// `uploads-by/<user>/<upload_id>` (an empty blob), so that an account's
/// deletion finds its unfinished uploads without listing everyone's.
pub const UPLOADS_BY: &str = "uploads-by/";

/// Where `owner`'s session entries are (see [`UPLOADS_BY`]).
pub fn upload_owner_prefix(owner: crate::ids::UserId) -> String {
    format!("{UPLOADS_BY}{}/", owner.0)
}

/// The owner's entry of session `id`.
pub fn upload_owner_key(owner: crate::ids::UserId, id: MediaId) -> String {
    format!("{}{id}", upload_owner_prefix(owner))
}

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_PX: u32 = 320;
/// Images with more pixels than this are not decoded (decompression
/// bombs): 50 megapixels, above any phone camera's photo.
pub const MAX_IMAGE_PIXELS: u64 = 50_000_000;
/// The type thumbnails are served as.
pub const THUMBNAIL_MIME: &str = "image/jpeg";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_have_one_form() {
        let id = MediaId(0xab);
        let s = id.to_string();
        assert_eq!(s, "000000000000000000000000000000ab");
        assert_eq!(s.parse::<MediaId>().unwrap(), id);
        for bad in [
            "",
            "AB000000000000000000000000000000",
            "../../../../etc/passwd0000000000",
            "000000000000000000000000000000ab0",
            "00000000000000000000000000000ab",
            "+0000000000000000000000000000000",
        ] {
            assert!(bad.parse::<MediaId>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<MediaId>(&json).unwrap(), id);
        let r = MediaId::random();
        assert_eq!(r.to_string().parse::<MediaId>().unwrap(), r);
    }
}
