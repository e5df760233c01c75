//! Stream-processing jobs that consume the log and derive state: delivery
//! marks (sent/delivered/read), presence and last seen, and per-user inbox
//! items. Each job stores its consumed offset atomically with its output
//! (`StateStore::apply`), so a replay after a crash is idempotent.
//!
//! Not built yet: issue 3 adds the inbox, receipts and presence jobs.
