use std::sync::Arc;

use parley_engines::{Result, StateStore};
use parley_schemas::codec;
use parley_schemas::event::{Event, InboxItem};
use parley_schemas::ids::{DeviceId, UserId};
use parley_schemas::wire::ServerFrame;

use crate::metrics;

/// Items fetched from the store per read.
pub const PAGE: usize = 256;

/// One device's position in its user's inbox. A device starts live (it
/// gets items issued from now on); `sync` rewinds it to its cursor or to
/// `since` and replays from there.
pub struct Feed {
    state: Arc<dyn StateStore>,
    pub user: UserId,
    pub device: DeviceId,
    /// The next seq this device should get.
    next: u64,
    /// Where the backlog being replayed ends (`None` when live).
    catch_up_to: Option<u64>,
    /// During a replay: whether to leave out what this device sent itself
    /// (a replay from the cursor does; one from an explicit `since` does not).
    skip_own: bool,
    saved: u64,
    /// Inbox items read from the store by this feed.
    pub items_read: u64,
}

impl Feed {
    pub async fn open(state: Arc<dyn StateStore>, user: UserId, device: DeviceId) -> Result<Feed> {
        let next = state.inbox_seq(user).await? + 1;
        let saved = state.cursor(user, device).await?.unwrap_or(0);
        Ok(Feed {
            state,
            user,
            device,
            next,
            catch_up_to: None,
            skip_own: true,
            saved,
            items_read: 0,
        })
    }

    /// The last seq this device was sent.
    pub fn delivered(&self) -> u64 {
        self.next - 1
    }

    /// A live item: the frames to send for it, in order, filling any gap
    /// first (a dropped push, or items issued while the device connected).
    pub async fn item(
        &mut self,
        seq: u64,
        frame: Arc<ServerFrame>,
        origin: Option<DeviceId>,
    ) -> Result<Vec<Arc<ServerFrame>>> {
        if seq < self.next || self.catch_up_to.is_some() {
            // Already sent, or the replay in progress will reach it.
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        while self.next < seq {
            let before = self.next;
            out.extend(
                self.read(self.next - 1, (seq - self.next) as usize, true)
                    .await?,
            );
            if self.next == before {
                break;
            }
        }
        if origin != Some(self.device) {
            out.push(frame);
        }
        self.next = seq + 1;
        Ok(out)
    }

    /// Starts replaying from after `since`, or after the stored cursor.
    pub async fn sync(&mut self, since: Option<u64>) -> Result<()> {
        let from = match since {
            Some(s) => s,
            None => self
                .state
                .cursor(self.user, self.device)
                .await?
                .unwrap_or(0),
        };
        let head = self.state.inbox_seq(self.user).await?;
        self.next = from.min(head) + 1;
        self.catch_up_to = Some(head);
        self.skip_own = since.is_none();
        Ok(())
    }

    /// The next page of the replay; empty once the feed is live again.
    pub async fn backlog(&mut self) -> Result<Vec<Arc<ServerFrame>>> {
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

    /// Stores the cursor if it moved. Called when the socket's queue is
    /// drained, so one write covers a burst of frames.
    pub async fn save_cursor(&mut self) -> Result<()> {
        let d = self.delivered();
        if d > self.saved {
            self.state.advance_cursor(self.user, self.device, d).await?;
            self.saved = d;
        }
        Ok(())
    }

    /// Reads items after `after`, moving `next` past them; with `skip_own`,
    /// leaves out those this device sent.
    async fn read(
        &mut self,
        after: u64,
        limit: usize,
        skip_own: bool,
    ) -> Result<Vec<Arc<ServerFrame>>> {
        let items = self
            .state
            .inbox_range(self.user, after, limit.min(PAGE))
            .await?;
        metrics::CATCHUP_READS.inc_by(items.len() as u64);
        self.items_read += items.len() as u64;
        let mut out = Vec::with_capacity(items.len());
        for (seq, bytes) in items {
            self.next = seq + 1;
            match codec::decode(&bytes) {
                Ok(Event::InboxItem(InboxItem { message, .. })) => {
                    let own = message.from == self.user && message.from_device == self.device;
                    if !(skip_own && own) {
                        out.push(Arc::new(ServerFrame::Msg(message.to_frame(Some(seq)))))
                    }
                }
                Ok(_) | Err(_) => {
                    tracing::error!(user = %self.user, seq, "unreadable inbox item skipped")
                }
            }
        }
        Ok(out)
    }
}
