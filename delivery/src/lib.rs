//! Delivery: gives each inbox item its user's dense `seq`, stores it for
//! catch-up, and pushes it to the user's connected devices.
//!
//! - [`sequencer::Sequencer`] is the job that consumes the `inbox` topic (by
//!   user). One sequencer owns a partition, so each user's `seq` has one
//!   writer. It drops duplicates (a replayed router appends again) by the
//!   user's newest message per conversation, and stores each item with the
//!   offset it came from, atomically. A large group's post (read fan-out) is
//!   stored once, and each member's inbox gets seqs that point at it (runs).
//! - [`hub::Hub`] maps users to their connected devices' queues.
//! - [`feed::Feed`] is one device's view: it sends live items in order,
//!   fills any gap from the store, and replays the backlog after `sync`
//!   from the device's cursor, reading only that backlog (runs from the
//!   group's stream).
//! - [`route`]: pushes across processes. A [`route::Pusher`] is where a
//!   sequencer's pushes go: the local hub, or [`route::ClusterPusher`],
//!   which mails them to the edges the session registry names.
//! - [`metrics`]: deliveries, connected sockets, catch-up reads and the
//!   append-to-push latency.

pub mod feed;
pub mod hub;
pub mod metrics;
pub mod route;
pub mod sequencer;
