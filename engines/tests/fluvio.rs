//! The log contract against a real Fluvio cluster, when there is one:
//! `PARLEY_FLUVIO_ADDR=HOST:PORT` (the SC's public address). No Fluvio
//! server can be installed on the CI machines, so there the test says so
//! and passes; the adapter's pure parts are unit-tested in CI
//! (`engines/src/fluvio/`). `docs/fluvio.md` says how to run it.

use std::sync::Arc;

use parley_engines::contract::{compact_contract, log_contract, trim_contract};
use parley_engines::fluvio::FluvioLog;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fluvio_log_passes_the_log_contract() {
    let Ok(addr) = std::env::var("PARLEY_FLUVIO_ADDR") else {
        println!("skipped: no Fluvio (set PARLEY_FLUVIO_ADDR=HOST:PORT to run the contract)");
        eprintln!("skipped: no Fluvio");
        return;
    };
    let log = FluvioLog::connect(&format!("fluvio://{addr}"))
        .await
        .expect("connecting to the Fluvio cluster at PARLEY_FLUVIO_ADDR");
    let log = Arc::new(log);
    log_contract(log.clone()).await;
    // Fluvio applies its topics' retention settings itself.
    trim_contract(log.clone(), false).await;
    // Nor can single records be deleted: compaction keeps everything.
    compact_contract(log, false).await;
}
