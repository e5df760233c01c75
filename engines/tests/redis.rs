//! The state contract against a real redis-server started for the test.

use std::sync::Arc;

use parley_engines::contract::redis_server::RedisServer;
use parley_engines::contract::state_contract;
use parley_engines::RedisState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_state_passes_the_state_contract() {
    let server = RedisServer::start();
    let store = RedisState::connect(&server.url, "parley-test")
        .await
        .unwrap();
    state_contract(Arc::new(store)).await;
}
