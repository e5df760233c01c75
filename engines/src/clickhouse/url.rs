//! The `clickhouse://` URL a history is picked by.

use crate::error::{EngineError, Result};

/// Where a ClickHouse is: `clickhouse://HOST:PORT/DATABASE?user=U&password=P`,
/// HTTP port; database `parley` if none is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseUrl {
    pub http: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl ClickHouseUrl {
    pub fn parse(url: &str) -> Result<ClickHouseUrl> {
        let bad = |why: &str| EngineError::Config(format!("{url}: {why}"));
        let rest = url
            .strip_prefix("clickhouse://")
            .ok_or_else(|| bad("expected clickhouse://HOST:PORT/DATABASE"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, database) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let database = if database.is_empty() {
            "parley"
        } else {
            database
        };
        if !database
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(bad("the database name must be [A-Za-z0-9_]"));
        }
        let (mut user, mut password) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("user", v)) => user = Some(v.to_owned()),
                Some(("password", v)) => password = Some(v.to_owned()),
                _ => return Err(bad(&format!("unknown parameter {pair:?}"))),
            }
        }
        let host = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:8123")
        };
        Ok(ClickHouseUrl {
            http: format!("http://{host}"),
            database: database.to_owned(),
            user,
            password,
        })
    }
}
