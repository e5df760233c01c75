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

pub const ALL: [&str; 3] = [EVENTS, PRESENCE, INBOX];
