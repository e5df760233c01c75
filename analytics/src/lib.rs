//! History for analysts: the writer that fills the history store from the
//! log, and the analysts' ready queries on ClickHouse.
//!
//! Layout:
//! - [`writer`]: the history writer, two processor jobs that batch the log
//!   into history rows: messages, read marks and per-message receipts from
//!   `events`, presence sessions from `presence`. They write through the
//!   [`History`](parley_engines::History) seam: ClickHouse in a cluster
//!   (`parley_engines::clickhouse`, feature `clickhouse`), a redb file in
//!   `parley up`.
//! - [`queries`]: the analysts' ready queries (`queries/*.sql`), run by
//!   name into a printable table (`parley analytics <name>`). They are
//!   ClickHouse SQL, run through `parley_engines::clickhouse` (feature
//!   `clickhouse`); this crate names no ClickHouse client itself.
//! - `sql/schema.production.sql`: the history schema for a current
//!   ClickHouse; the 18.16 one the store creates lives beside the store,
//!   and `tests/schema.rs` keeps the two in step (README.md says what
//!   differs).
//! - [`internal_events`]: the writer's telemetry, logged and counted at once.
//! - [`error`]: [`AnalyticsError`], with its retry hint.

pub mod error;
pub mod internal_events;
pub mod queries;
pub mod writer;

pub use error::AnalyticsError;
pub use writer::{HistoryWriter, SessionWriter};
