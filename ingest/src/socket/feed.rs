//! One device's position in its user's inbox: live items in order, gaps
//! filled from the store, and after `sync` the backlog replayed from the
//! device's cursor (or `since`), reading only that backlog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_engines::state::InboxStore;
use parley_engines::telemetry::emit;
use parley_engines::{InboxEntry, Result};
use parley_schemas::codec;
use parley_schemas::event::{Event, InboxItem};
use parley_schemas::ids::{DeviceId, UserId};
use parley_schemas::wire::SharedMsg;

use crate::internal_events::{CatchupItemRead, EdgeTrouble};

/// How often a device's cursor is written while it streams.
pub const CURSOR_EVERY: Duration = Duration::from_secs(1);

/// Inbox rows fetched from the store per read.
const PAGE: usize = parley_engines::state::INBOX_PAGE;

/// `msg` frames to send, with their seqs.
pub type Msgs = Vec<(u64, Arc<SharedMsg>)>;

/// One device's position in its user's inbox.
///
/// A device starts live: it is sent the items issued from now on. `sync`
/// replays from its cursor (or from `since`) and then goes live again.
/// The cursor is the last seq up to which the device has been sent
/// *everything*: it moves only over contiguous seqs, so a device that went
/// live with a backlog it never synced keeps its cursor before that backlog.
pub struct Feed {
    state: Arc<dyn InboxStore>,
    pub user: UserId,
    pub device: DeviceId,
    /// The next seq to consider for this device.
    next: u64,
    cursor: u64,
    /// Where the backlog being replayed ends (`None` when live).
    catch_up_to: Option<u64>,
    /// During a replay: whether to leave out what this device sent itself
    /// (a replay from the cursor does; one from an explicit `since` does not).
    skip_own: bool,
    saved: u64,
    saved_at: Instant,
    /// Inbox items read from the store by this feed.
    pub items_read: u64,
}

impl Feed {
    pub async fn open(state: Arc<dyn InboxStore>, user: UserId, device: DeviceId) -> Result<Feed> {
        let next = state.inbox_seq(user).await? + 1;
        let saved = state.cursor(user, device).await?.unwrap_or(0);
        Ok(Feed {
            state,
            user,
            device,
            next,
            cursor: saved,
            catch_up_to: None,
            skip_own: true,
            saved,
            saved_at: Instant::now(),
            items_read: 0,
        })
    }

    /// Everything up to this seq has been sent to the device.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Seq `seq` went to the device (or needs not: it sent it itself).
    fn covered(&mut self, seq: u64) {
        self.next = self.next.max(seq + 1);
        if seq == self.cursor + 1 {
            self.cursor = seq;
        }
    }

    /// A live item: the frames to send for it, in order, filling any gap
    /// first (a dropped push, or items issued while the device connected).
    pub async fn item(
        &mut self,
        seq: u64,
        msg: Arc<SharedMsg>,
        origin: Option<DeviceId>,
    ) -> Result<Msgs> {
        if seq < self.next || self.catch_up_to.is_some() {
            // Already sent, or the replay in progress will reach it.
            return Ok(Vec::new());
        }
        let mut out = self.fill_before(seq).await?;
        if origin != Some(self.device) {
            out.push((seq, msg));
        }
        self.covered(seq);
        Ok(out)
    }

    /// Everything stored but not yet sent (pushes were lost on the way):
    /// read up to the user's head now.
    pub async fn fill(&mut self) -> Result<Msgs> {
        if self.catch_up_to.is_some() {
            return Ok(Vec::new());
        }
        let head = self.state.inbox_seq(self.user).await?;
        self.fill_before(head + 1).await
    }

    /// Reads what this device has not been sent below `end`.
    async fn fill_before(&mut self, end: u64) -> Result<Msgs> {
        let mut out = Vec::new();
        while self.next < end {
            let before = self.next;
            out.extend(
                self.read(self.next - 1, (end - self.next) as usize, true)
                    .await?,
            );
            if self.next == before {
                break;
            }
        }
        Ok(out)
    }

    /// Starts replaying from after `since`, or after the cursor.
    pub async fn sync(&mut self, since: Option<u64>) -> Result<()> {
        let head = self.state.inbox_seq(self.user).await?;
        let from = since.unwrap_or(self.cursor).min(head);
        if since.is_some() {
            // The client says it holds everything up to `since`.
            self.cursor = self.cursor.max(from);
        }
        self.next = from + 1;
        self.catch_up_to = Some(head);
        self.skip_own = since.is_none();
        Ok(())
    }

    /// The next page of the replay; empty once the feed is live again.
    pub async fn backlog(&mut self) -> Result<Msgs> {
        let Some(end) = self.catch_up_to else {
            return Ok(Vec::new());
        };
        // Items issued during the replay are read here too, so the switch
        // back to live misses nothing.
        let before = self.next;
        let page = self.read(self.next - 1, PAGE, self.skip_own).await?;
        let read = self.next - before;
        if read == 0 || self.next > end && read < PAGE as u64 {
            self.catch_up_to = None;
        }
        Ok(page)
    }

    pub fn catching_up(&self) -> bool {
        self.catch_up_to.is_some()
    }

    /// Stores the cursor if it moved and the last save is older than
    /// [`CURSOR_EVERY`] (or `force`, at close). A cursor that lags only
    /// means a reconnect resends a little, which clients drop by `msg_id`.
    pub async fn save_cursor(&mut self, force: bool) -> Result<()> {
        let due = force || self.saved_at.elapsed() >= CURSOR_EVERY;
        if self.cursor > self.saved && due {
            self.saved_at = Instant::now();
            self.state
                .advance_cursor(self.user, self.device, self.cursor)
                .await?;
            self.saved = self.cursor;
        }
        Ok(())
    }

    /// Reads items after `after`, marking them covered; with `skip_own`,
    /// leaves out those this device sent. A run of a large group's posts
    /// is read from the group's stream.
    async fn read(&mut self, after: u64, limit: usize, skip_own: bool) -> Result<Msgs> {
        let rows = self
            .state
            .inbox_range(self.user, after, limit.min(PAGE))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                InboxEntry::Item { seq, item } => self.take(seq, &item, skip_own, &mut out),
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
                            self.take(seq + i as u64, bytes, skip_own, &mut out);
                        }
                    }
                    // Missing posts cannot come back; do not stall on them.
                    for s in
                        (seq + posts.len() as u64..seq + u64::from(count)).filter(|s| *s > after)
                    {
                        self.covered(s);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Stored item `seq` (an inbox item, or a group post), read.
    fn take(&mut self, seq: u64, bytes: &[u8], skip_own: bool, out: &mut Msgs) {
        emit(CatchupItemRead);
        self.items_read += 1;
        self.covered(seq);
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
        if !(skip_own && own) {
            out.push((seq, Arc::new(SharedMsg::new(message.to_frame(None)))));
        }
    }
}
