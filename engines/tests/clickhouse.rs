//! The history contract against a real ClickHouse (a private
//! clickhouse-server on free ports).

use std::sync::Arc;

use parley_engines::clickhouse::ClickHouseHistory;
use parley_engines::contract::history_contract;
use parley_engines::contract::servers::ClickHouseServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_history_passes_the_history_contract() {
    let server = ClickHouseServer::start();
    let history = ClickHouseHistory::connect(&server.url).unwrap();
    history.migrate().await.unwrap();
    // A second migration finds everything in place.
    history.migrate().await.unwrap();
    history_contract(Arc::new(history)).await;
}
