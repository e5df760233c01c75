//! Contract suites: one per seam, written once. Every implementation's
//! tests call them, so the embedded engines, Redis and Fluvio are held to
//! the same behaviour. Each suite uses fresh random names, so it can run
//! against a shared server.

//!
//! [`servers`]: real servers for the tests, started on free ports in temp
//! dirs (redis-server, clickhouse-server, moto_server), never one already
//! running.

mod blob;
mod cluster;
mod history;
mod history_actions;
mod history_search;
mod log;
pub mod servers;
mod state;

pub use self::blob::blob_contract;
pub use self::cluster::cluster_contract;
pub use self::history::{history_contract, message};
pub use self::log::{log_contract, trim_contract};
pub use self::state::{
    account_store_contract, conversation_store_contract, inbox_store_contract, job_store_contract,
    key_store_contract, media_store_contract, notify_store_contract, presence_store_contract,
    state_contract,
};

/// A name no earlier run used.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}
