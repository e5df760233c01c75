//! Contract suites: one per seam, written once. Every implementation's
//! tests call them, so the embedded engines, Redis and Fluvio are held to
//! the same behaviour. Each suite uses fresh random names, so it can run
//! against a shared server.

pub mod clickhouse_server;
mod cluster;
mod history;
mod log;
pub mod redis_server;
mod state;

pub use self::cluster::cluster_contract;
pub use self::history::{history_contract, message};
pub use self::log::log_contract;
pub use self::state::state_contract;

/// A name no earlier run used.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}
