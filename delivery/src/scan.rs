//! Reading a user's inbox backwards from a seq, a page at a time, over at
//! most [`SCAN`] seqs: how the sequencer finds a stored copy of a message
//! (to blank it, or to tell a replayed item from a new one).

use parley_engines::state::{InboxEntry, InboxStore, INBOX_PAGE};
use parley_engines::Result;
use parley_schemas::ids::UserId;

/// Inbox seqs looked through at most, per recipient, per search.
pub const SCAN: u64 = 4096;

/// A walk down `user`'s inbox from just below a seq.
pub struct Back {
    top: u64,
    floor: u64,
}

impl Back {
    /// Starts at `below - 1`.
    pub fn below(below: u64) -> Self {
        Back {
            top: below.saturating_sub(1),
            floor: below.saturating_sub(SCAN + 1),
        }
    }

    /// The next rows down, newest first (each row once, by where it
    /// starts); `None` once [`SCAN`] seqs were looked through.
    pub async fn page(
        &mut self,
        state: &dyn InboxStore,
        user: UserId,
    ) -> Result<Option<Vec<InboxEntry>>> {
        if self.top <= self.floor {
            return Ok(None);
        }
        let (after, top) = (
            self.top.saturating_sub(INBOX_PAGE as u64).max(self.floor),
            self.top,
        );
        self.top = after;
        let rows = state.inbox_range(user, after, INBOX_PAGE).await?;
        let starts_here = |r: &InboxEntry| {
            let seq = match r {
                InboxEntry::Item { seq, .. } | InboxEntry::Run { seq, .. } => *seq,
            };
            seq > after && seq <= top
        };
        Ok(Some(rows.into_iter().rev().filter(starts_here).collect()))
    }
}
