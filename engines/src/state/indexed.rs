//! [`Indexed`]: the message index's entry, kept by stores as text.

use parley_schemas::ids::UserId;
use parley_schemas::media::MediaId;

/// What the message index keeps of a message: enough for the edge to
/// judge an action on it without reading the history, which trails the
/// log, and for the router to let go of the media a deleted message
/// carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    pub from: UserId,
    /// Text, the only kind an edit may change.
    pub text: bool,
    pub deleted: bool,
    /// The upload a media message carried.
    pub media: Option<MediaId>,
}

impl Indexed {
    /// `{from}:{t|o|m<media id>}` and `:x` once deleted: how stores keep
    /// it as text (a store marks a deletion by appending `:x`).
    pub fn encode(&self) -> String {
        let kind = match (self.text, self.media) {
            (true, _) => "t".to_owned(),
            (false, Some(m)) => format!("m{m}"),
            (false, None) => "o".to_owned(),
        };
        let deleted = if self.deleted { ":x" } else { "" };
        format!("{}:{kind}{deleted}", self.from)
    }

    pub fn decode(s: &str) -> Option<Indexed> {
        let mut parts = s.split(':');
        let from = UserId(parts.next()?.parse().ok()?);
        let (text, media) = match parts.next()? {
            "t" => (true, None),
            "o" => (false, None),
            m => (false, Some(m.strip_prefix('m')?.parse().ok()?)),
        };
        let deleted = match parts.next() {
            None => false,
            Some("x") => true,
            Some(_) => return None,
        };
        Some(Indexed {
            from,
            text,
            deleted,
            media,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_written_and_as_stores_mark_them() {
        let m = MediaId(0xabc);
        for (text, media) in [(true, None), (false, None), (false, Some(m))] {
            let i = Indexed {
                from: UserId(7),
                text,
                deleted: false,
                media,
            };
            assert_eq!(Indexed::decode(&i.encode()), Some(i));
            // A store deletes by appending `:x` to the text it holds.
            let gone = Indexed::decode(&format!("{}:x", i.encode())).unwrap();
            assert_eq!(gone, Indexed { deleted: true, ..i });
        }
        assert_eq!(
            Indexed::decode("7:o").unwrap().media,
            None,
            "entries made before media"
        );
        assert_eq!(Indexed::decode("7:mnothex"), None);
        assert_eq!(Indexed::decode("7:q"), None);
    }
}
