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
pub use self::log::{compact_contract, log_contract, trim_contract};
pub use self::state::{
    account_store_contract, conversation_store_contract, inbox_store_contract, job_store_contract,
    key_store_contract, media_store_contract, notify_store_contract, presence_store_contract,
    state_contract,
};

/// A name no earlier run used.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// What a store does in the background (ClickHouse mutations) has no
/// event to await: `check` is polled until it gives a value, and after
/// 20 s the test fails with `what` and the last state `check` described.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(state) => assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within 20 s: {state}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
