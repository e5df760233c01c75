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

/// A history made before media bodies carried their sizes gains the new
/// columns at the next migration, and keeps its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_adds_the_media_columns_to_an_older_messages_table() {
    let server = ClickHouseServer::start();
    let old = "CREATE TABLE parley.messages (msg_id UInt64, conversation String, sender UInt64, \
               recipient UInt64, group_id UInt64, kind String, text String, media_id String, \
               mime String, caption String, client_msg_id String, from_device UInt64, ts UInt64, \
               time DateTime MATERIALIZED toDateTime(intDiv(ts, 1000)), \
               day Date MATERIALIZED toDate(toDateTime(intDiv(ts, 1000)))) \
               ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(day) ORDER BY (conversation, msg_id)";
    server.sql(old);
    server.sql(
        "INSERT INTO parley.messages (msg_id, conversation, kind, media_id, ts) \
         VALUES (1, 'd:1:2', 'media', 'm', 1700000000000)",
    );
    let history = ClickHouseHistory::connect(&server.url).unwrap();
    history.migrate().await.unwrap();
    let columns = server.sql(
        "SELECT name FROM system.columns WHERE database = 'parley' AND table = 'messages' \
         AND name IN ('media_size', 'width', 'height', 'thumbnail') ORDER BY name",
    );
    assert_eq!(columns, "height\nmedia_size\nthumbnail\nwidth\n");
    assert_eq!(
        server.sql("SELECT media_size, kind FROM parley.messages"),
        "0\tmedia\n"
    );
    history.migrate().await.unwrap();
}
