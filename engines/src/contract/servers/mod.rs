//! Real servers for tests: each starts the installed binary on a free
//! loopback port in a temp dir, waits until it answers, and stops it when
//! dropped (Redis, ClickHouse, an S3-compatible server); and a
//! size-limited tmpfs for a full disk.

pub mod clickhouse;
pub mod redis;
pub mod s3;
pub mod tmpfs;

pub use self::clickhouse::ClickHouseServer;
pub use self::redis::RedisServer;
pub use self::s3::S3Server;
pub use self::tmpfs::Tmpfs;
