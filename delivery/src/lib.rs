//! Delivery: tails the per-user inbox partitions a node owns and pushes to
//! connected devices; a reconnecting device catches up from its own cursor,
//! reading only its backlog.
//!
//! Not built yet: issue 3 adds the tailers and the per-device fan-out.
