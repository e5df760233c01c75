//! Stream-processing jobs that consume the log and derive state. Each runs
//! on [`parley_engines::job::run_job`], which stores the job's output
//! together with its consumed offset, so a replay after a crash is
//! idempotent. They run in `parley process` (and in `parley up`).
//!
//! Layout:
//! - [`router::Router`] consumes `events` (by conversation). A message
//!   becomes an inbox item for its recipient and for the sender (the
//!   sender's other devices sync from it), appended to `inbox` (by user),
//!   where delivery gives it the user's dense `seq`. A group message goes
//!   to every current member (refused from a non-member): as an item each,
//!   or above the read fan-out size as one `GroupPost` per inbox partition.
//!   Group changes are applied to the group's state here, in log order. A
//!   receipt advances the cumulative delivered/read mark and sends a
//!   `status` to the sender (per member and aggregate in a group). It
//!   also derives the idempotency map and last seen from messages, so both
//!   survive the loss of the edge's own writes.
//! - [`presence::PresenceJob`] consumes `presence` (by user): heartbeats
//!   mean online, `active` heartbeats move last seen, a closing socket or
//!   15 s of silence mean offline.
//! - [`accounts::AccountsJob`] consumes `accounts` (by user) and restores
//!   accounts and device counters that the state store lacks: with it, the
//!   whole state store can be rebuilt from the log.
//! - [`thumbnails::ThumbnailJob`] consumes `accounts` too: for each
//!   uploaded image, a metadata-free JPEG thumbnail in the blob store and
//!   the image's size in the state store.
//! - [`media_sweeper::Sweeper`], not a job but a periodic task: deletes
//!   uploads never sent, blobs no upload refers to and expired resumable
//!   sessions.
//! - [`notify`]: notifications for users who are away: the notifier job on
//!   `inbox` queues them (collapsed per conversation), a dispatcher per
//!   partition sends what is due through the sinks (a signed webhook,
//!   Web Push).
//! - [`retention::LogRetention`], a periodic task: drops log records every
//!   consumer has passed, once old enough (or at once under disk pressure),
//!   and compacts `accounts` ([`compaction`]: a record goes once later
//!   ones set all it set).
//! - [`internal_events`]: their telemetry, logged and counted at once.

pub mod accounts;
pub mod compaction;
pub mod internal_events;
pub mod media_sweeper;
pub mod notify;
pub mod presence;
pub mod retention;
pub mod router;
pub mod thumbnails;
