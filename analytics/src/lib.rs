//! History and analytics on ClickHouse.
//!
//! - [`clickhouse`]: [`History`](parley_engines::History) on ClickHouse
//!   ([`ClickHouseHistory`]), the schema it creates (`sql/schema.sql`, for
//!   18.16; `sql/schema.production.sql` for a current server; README.md
//!   explains the difference), and `clickhouse://` URLs.
//! - [`writer`]: the history writer, two processor jobs that batch the log
//!   into history rows: messages, read marks and per-message receipts from
//!   `events`, presence sessions from `presence`.
//! - [`queries`]: the analysts' ready queries (`queries/*.sql`), run by
//!   name into a printable table (`parley analytics <name>`).
//! - [`error`]: [`AnalyticsError`], with its retry hint.
//!
//! The embedded history for `parley up` is `parley_engines::RedbHistory`;
//! both pass the history contract suite.

pub mod clickhouse;
pub mod error;
pub mod queries;
pub mod writer;

pub use crate::clickhouse::{ClickHouseHistory, ClickHouseUrl};
pub use error::AnalyticsError;
pub use writer::{HistoryWriter, SessionWriter};
