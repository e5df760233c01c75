//! History and analytics: the ClickHouse schema, the history writer,
//! scrollback queries and the analysts' ready queries.
//!
//! Not built yet: issue 5 fills this crate.
