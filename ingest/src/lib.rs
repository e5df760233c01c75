//! The edge: authenticates clients over HTTP and WebSocket and appends every
//! message, receipt and heartbeat to the partitioned log, acking a client
//! only once the append is durable.
//!
//! Not built yet: issue 3 fills this crate (axum router, auth, socket
//! reader/writer tasks). It already depends only on the engine traits of
//! `parley-engines`, never on a concrete backend.
