//! The names of the jobs that consume the log. Each is a consumer group
//! whose offsets live in the state store beside its output, so they are
//! part of the stored data: renaming one replays its topic from the start.
//! Named here because other roles read them too: the edge waits for the
//! router and the accounts job to apply a change before it answers, and an
//! appender that takes a partition over reads how far the router got.

/// Messages and receipts → inbox items, marks, group state (`events`).
pub const ROUTER: &str = "router";
/// Heartbeats → presence and last seen, and notices to watchers (`presence`).
pub const PRESENCE: &str = "presence";
/// Accounts, devices, profiles, contacts, privacy (`accounts`).
pub const ACCOUNTS: &str = "accounts";
/// Inbox items → per-user seqs, stored inboxes and pushes (`inbox`).
pub const SEQUENCER: &str = "deliver";
/// Messages, read marks and receipts → the history store (`events`).
pub const HISTORY: &str = "history";
/// Heartbeats → presence sessions in the history store (`presence`).
pub const HISTORY_SESSIONS: &str = "history-sessions";
/// Uploaded images → thumbnails and image sizes (`accounts`).
pub const THUMBNAILS: &str = "thumbnails";
/// Inbox items for users who are away → queued notifications (`inbox`).
pub const NOTIFIER: &str = "notifier";
