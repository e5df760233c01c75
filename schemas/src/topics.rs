//! The log's topics, named once for every role.

/// Messages and receipts, partitioned by conversation
/// ([`crate::partition::conversation_partition`]), so one conversation's
/// events keep their order.
pub const EVENTS: &str = "events";
/// Heartbeats and presence, partitioned by user.
pub const PRESENCE: &str = "presence";
/// Inbox items and status pushes, partitioned by recipient
/// ([`crate::partition::user_partition`]): what delivery tails.
pub const INBOX: &str = "inbox";

/// Accounts and devices as they are created, partitioned by user: the
/// state store holds them too, and rebuilds them from here if it is lost.
pub const ACCOUNTS: &str = "accounts";

/// Notifications no sink took after every try (dead letters), by user.
pub const NOTIFY_DEAD: &str = "notify-dead";

/// Users' reports of messages and users, by reporter, for operators
/// (`parley moderation` reads them).
pub const MODERATION: &str = "moderation";

pub const ALL: [&str; 6] = [EVENTS, PRESENCE, INBOX, ACCOUNTS, NOTIFY_DEAD, MODERATION];
