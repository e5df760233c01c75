//! Real servers for tests: each starts the installed binary on a free
//! loopback port in a temp dir, waits until it answers, and stops it when
//! dropped.

pub mod clickhouse;
pub mod redis;

pub use self::clickhouse::ClickHouseServer;
pub use self::redis::RedisServer;
