//! One device's position in its user's inbox: what it confirmed, what it
//! was sent, and what exists. Items go out in seq order, read from the
//! store a page at a time; only the device's `received` (or `sync since`)
//! moves its stored cursor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_engines::state::StateStore;
use parley_engines::telemetry::emit;
use parley_engines::{InboxEntry, Result};
use parley_schemas::codec;
use parley_schemas::event::{Event, InboxItem};
use parley_schemas::ids::{DeviceId, UserId};
use parley_schemas::wire::SharedMsg;

use crate::internal_events::{CatchupItemRead, EdgeTrouble};

/// How often a device's confirmed cursor is written while it streams.
pub const CURSOR_EVERY: Duration = Duration::from_secs(1);

/// Inbox rows read from the store, and so sent, per page: a backlog of any
/// size goes out a page at a time, with the socket's answers and other
/// work between pages, and one page is all of it the edge holds.
pub const PAGE: usize = 64;

/// `msg` frames to send, with their seqs.
pub type Msgs = Vec<(u64, Arc<SharedMsg>)>;

/// One device's position in its user's inbox.
///
/// Three seqs: `confirmed` (the device stored everything up to it; only
/// the device moves it), `next` (the first seq not yet sent on this
/// socket) and `head` (how far this socket is to be sent). The device is
/// sent `next..=head` in order, so no live item overtakes an older one: a
/// socket opens at its confirmed cursor; a backlog (items that existed
/// before the client saw its connection accepted, past its confirmed
/// cursor) waits for the device's first `sync` (or `received`), which says
/// where it starts, and every live item waits behind it. Without a backlog,
/// live items go out at once, and one whose push was missed (a cluster's
/// registry not yet showing the socket) is read from the store.
pub struct Feed {
    state: Arc<dyn StateStore>,
    pub user: UserId,
    pub device: DeviceId,
    next: u64,
    head: u64,
    /// The newest seq known to exist: confirmations stop there.
    exists: u64,
    confirmed: u64,
    /// Seqs up to this one include what this device sent itself (a `sync`
    /// with `since` asks for everything); later ones leave them out, as
    /// the device has them already.
    own_to: u64,
    saved: u64,
    saved_at: Instant,
    /// Inbox items read from the store by this feed.
    pub items_read: u64,
    /// `retention.mode = "until_delivered"`: rows every device of the
    /// user confirmed are deleted as confirmations are saved.
    delete_delivered: bool,
    /// Seqs up to this one were to be sent but are gone: the device is
    /// told before the rest.
    expired: Option<u64>,
    /// Whether the store was asked, since the last `sync`, for rows gone
    /// below `next`.
    gap_checked: bool,
    /// Whether the device said where it stands (`sync` or `received`).
    /// Until then nothing up to `backlog_to` is sent: a `sync {since}`
    /// that follows the connect must not find the socket already paging
    /// from the confirmed cursor.
    started: bool,
    /// Items up to here existed before the client saw its connection
    /// accepted: its backlog, if it has not confirmed them.
    backlog_to: u64,
}

impl Feed {
    /// `backlog_to`: the inbox's newest seq before the client saw its
    /// connection accepted (`None`: now).
    pub async fn open(
        state: Arc<dyn StateStore>,
        user: UserId,
        device: DeviceId,
        backlog_to: Option<u64>,
    ) -> Result<Feed> {
        let exists = state.inbox_seq(user).await?;
        let confirmed = state.cursor(user, device).await?.unwrap_or(0).min(exists);
        Ok(Feed {
            state,
            user,
            device,
            next: confirmed + 1,
            // A backlog waits for `sync` ([`behind`](Self::behind)): sent
            // now, a `sync` that follows would send it all again.
            head: exists,
            exists,
            confirmed,
            own_to: 0,
            saved: confirmed,
            saved_at: Instant::now(),
            items_read: 0,
            delete_delivered: false,
            expired: None,
            gap_checked: false,
            started: false,
            backlog_to: backlog_to.unwrap_or(exists).clamp(confirmed, exists),
        })
    }

    /// Deletes what every device of the user confirmed, as this one's
    /// confirmations are saved (`until_delivered`).
    pub fn deleting_delivered(mut self, yes: bool) -> Feed {
        self.delete_delivered = yes;
        self
    }

    /// What the device has confirmed.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// Whether items exist that this socket has not sent yet and may
    /// send now: before the device says where it stands, only live ones.
    pub fn behind(&self) -> bool {
        (self.started || self.next > self.backlog_to) && self.next <= self.head
    }

    /// A live item. It goes out at once if it is the next one; a later
    /// one waits for the pages before it (a dropped push, or a backlog
    /// not yet sent), which [`page`](Self::page) reads in order.
    pub fn item(&mut self, seq: u64, msg: Arc<SharedMsg>, origin: Option<DeviceId>) -> Msgs {
        self.head = self.head.max(seq);
        self.exists = self.exists.max(seq);
        if seq != self.next {
            return Vec::new();
        }
        self.next += 1;
        if origin == Some(self.device) && seq > self.own_to {
            return Vec::new();
        }
        vec![(seq, msg)]
    }

    /// Pushes may have been lost on the way: learns the head from the store.
    pub async fn refresh(&mut self) -> Result<()> {
        self.exists = self.exists.max(self.state.inbox_seq(self.user).await?);
        self.head = self.head.max(self.exists);
        Ok(())
    }

    /// `sync`: resend after `since` (which the device thereby confirms),
    /// or after the confirmed cursor.
    pub async fn sync(&mut self, since: Option<u64>) -> Result<()> {
        self.refresh().await?;
        match since {
            Some(since) => {
                let since = since.min(self.head);
                self.confirm(since);
                self.next = since + 1;
                self.own_to = self.head;
            }
            None => {
                self.next = self.confirmed + 1;
                self.own_to = 0;
            }
        }
        self.gap_checked = false;
        self.started = true;
        Ok(())
    }

    /// What the last page found gone below it, once.
    pub fn take_expired(&mut self) -> Option<u64> {
        self.expired.take()
    }

    /// The device holds everything up to `seq` (no further than what exists).
    pub fn confirm(&mut self, seq: u64) {
        self.confirmed = self.confirmed.max(seq.min(self.exists));
    }

    /// `received`: confirms, and before the device's first `sync` also
    /// says where its backlog starts.
    pub fn received(&mut self, seq: u64) {
        self.confirm(seq);
        if !self.started {
            self.next = self.next.max(self.confirmed + 1);
            self.started = true;
        }
    }

    /// The next page of what this socket has not sent; empty when it is
    /// not [`behind`](Self::behind).
    pub async fn page(&mut self) -> Result<Msgs> {
        if !self.behind() {
            return Ok(Vec::new());
        }
        if !self.gap_checked {
            // Rows deleted before this device had them: say so, once per
            // sync, instead of a silent gap.
            self.gap_checked = true;
            let gone_to = match self.state.inbox_first(self.user).await? {
                Some(first) if first > self.next => Some(first - 1),
                Some(_) => None,
                None => Some(self.head),
            };
            if let Some(to) = gone_to {
                self.expired = Some(to);
                self.next = to + 1;
                if !self.behind() {
                    return Ok(Vec::new());
                }
            }
        }
        let before = self.next;
        let page = self.read(before - 1, PAGE).await?;
        if self.next == before {
            // The store has nothing where the head says items are: they
            // cannot come back, so do not stall on them, but never pass
            // them silently either: the device is told they will not come
            // (`expired`), as for rows retention deleted, and it is counted.
            emit(EdgeTrouble::InboxUnreadable {
                user: self.user,
                seq: before,
                what: "items missing below the head",
            });
            self.expired = Some(self.head);
            self.next = self.head + 1;
        }
        Ok(page)
    }

    /// Whether a confirmation waits to be stored.
    pub fn unsaved(&self) -> bool {
        self.confirmed > self.saved
    }

    /// Stores the confirmed cursor if it moved and the last save is older
    /// than [`CURSOR_EVERY`] (or `force`, at close). A lagging cursor only
    /// means a reconnect resends a little, which clients drop by `msg_id`.
    pub async fn save_cursor(&mut self, force: bool) -> Result<()> {
        let due = force || self.saved_at.elapsed() >= CURSOR_EVERY;
        if self.unsaved() && due {
            self.saved_at = Instant::now();
            self.state
                .advance_cursor(self.user, self.device, self.confirmed)
                .await?;
            self.saved = self.confirmed;
            if self.delete_delivered {
                self.delete_confirmed_everywhere().await?;
            }
        }
        Ok(())
    }

    /// Deletes the inbox rows every signed-in device of the user has
    /// confirmed. A device that never confirmed anything holds them all.
    async fn delete_confirmed_everywhere(&self) -> Result<()> {
        let mut through = self.confirmed;
        for (device, session) in self.state.device_sessions(self.user).await? {
            if session.revoked || device == self.device {
                continue;
            }
            let at = self.state.cursor(self.user, device).await?.unwrap_or(0);
            through = through.min(at);
        }
        if through > 0 {
            let rows = self.state.trim_inbox(self.user, through).await?;
            emit(crate::internal_events::InboxDelivered { rows });
        }
        Ok(())
    }

    /// When the next save is due, if one is waiting.
    pub fn save_due(&self) -> Option<Instant> {
        self.unsaved().then(|| self.saved_at + CURSOR_EVERY)
    }

    /// Reads up to `limit` rows after `after`, in order. A run of a large
    /// group's posts is read from the group's stream.
    async fn read(&mut self, after: u64, limit: usize) -> Result<Msgs> {
        let rows = self.state.inbox_range(self.user, after, limit).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                InboxEntry::Item { seq, item } => self.take(seq, &item, &mut out),
                InboxEntry::Run {
                    seq,
                    count,
                    group,
                    first,
                } => {
                    let posts = self.state.group_posts(group, first, count as usize).await?;
                    if posts.len() < count as usize {
                        emit(EdgeTrouble::InboxUnreadable {
                            user: self.user,
                            seq,
                            what: "group posts missing from a run",
                        });
                    }
                    for (i, (_, bytes)) in posts.iter().enumerate() {
                        if seq + i as u64 > after {
                            self.take(seq + i as u64, bytes, &mut out);
                        }
                    }
                    // Missing posts cannot come back; do not stall on them.
                    self.passed(seq + u64::from(count) - 1);
                }
            }
        }
        Ok(out)
    }

    fn passed(&mut self, seq: u64) {
        self.next = self.next.max(seq + 1);
        self.head = self.head.max(seq);
        self.exists = self.exists.max(seq);
    }

    /// Stored item `seq` (an inbox item, or a group post), read.
    fn take(&mut self, seq: u64, bytes: &[u8], out: &mut Msgs) {
        emit(CatchupItemRead);
        self.items_read += 1;
        self.passed(seq);
        let message = match codec::decode(bytes) {
            Ok(Event::InboxItem(InboxItem { message, .. }) | Event::MessageSent(message)) => {
                message
            }
            Ok(_) | Err(_) => {
                emit(EdgeTrouble::InboxUnreadable {
                    user: self.user,
                    seq,
                    what: "undecodable item",
                });
                return;
            }
        };
        let own = message.from == self.user && message.from_device == self.device;
        if !own || seq <= self.own_to {
            out.push((seq, Arc::new(SharedMsg::new(message.to_frame(None)))));
        }
    }
}
