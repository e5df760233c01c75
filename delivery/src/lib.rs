//! Delivery: the sequencer job, which gives each inbox item its user's
//! dense `seq`, stores it for catch-up, and pushes it to the user's
//! connected devices. It runs in `parley deliver` (and in `parley up`);
//! the sockets it pushes to are held by the edges (`parley-ingest`), which
//! replay each device's backlog from the stored inbox.
//!
//! Layout:
//! - [`sequencer::Sequencer`] consumes the `inbox` topic (by user). One
//!   sequencer owns a partition, so each user's `seq` has one writer. It
//!   drops duplicates (a replayed router appends again) by the user's
//!   newest message per conversation ([`replay`] checks one behind it
//!   against the store, so a message out of order is placed, never
//!   dropped), and stores each item with the offset
//!   it came from, atomically. A large group's post (read fan-out) is
//!   stored once, and each member's inbox gets seqs that point at it
//!   (runs). Pushes go through the
//!   [`Pusher`](parley_engines::push::Pusher) the binary gives it: the
//!   edge's hub in one process, the session registry in a cluster.
//! - [`redact`]: a deletion for everyone blanks the deleted message's
//!   stored copies (inbox items, a large group's post).
//! - [`replay`]: a copy, or a message whose order broke?
//! - [`scan`]: the backwards walk down an inbox both of those use.

pub mod redact;
pub mod replay;
pub mod scan;
pub mod sequencer;
