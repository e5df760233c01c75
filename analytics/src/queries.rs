//! The analysts' ready queries (`queries/*.sql`), run by name and returned
//! as a table of text cells, the way `parley analytics <name>` prints them.

use crate::error::AnalyticsError;
#[cfg(feature = "clickhouse")]
use parley_engines::clickhouse::ClickHouseHistory;

/// `(name, what it answers, SQL)`, in the order `parley analytics` lists them.
/// A query's SQL may hold `{status}`, put in by [`query`] (see
/// [`RECEIPT_STATUS`]): the two latency queries share one body.
pub const QUERIES: &[(&str, &str, &str)] = &[
    (
        "volume_per_minute",
        "messages and senders per minute, by kind",
        include_str!("../queries/volume_per_minute.sql"),
    ),
    (
        "top_conversations",
        "the busiest conversations",
        include_str!("../queries/top_conversations.sql"),
    ),
    (
        "delivery_latency",
        "send-to-delivered latency p50/p99 per hour",
        include_str!("../queries/receipt_latency.sql"),
    ),
    (
        "read_latency",
        "send-to-read latency p50/p99 per hour",
        include_str!("../queries/receipt_latency.sql"),
    ),
    (
        "dau",
        "daily active users (senders and active app users)",
        include_str!("../queries/dau.sql"),
    ),
    (
        "dau_mau",
        "monthly active users, mean DAU and DAU/MAU",
        include_str!("../queries/dau_mau.sql"),
    ),
    (
        "group_sizes",
        "groups by number of active senders",
        include_str!("../queries/group_sizes.sql"),
    ),
    (
        "media_share",
        "share of media messages per day, by MIME type",
        include_str!("../queries/media_share.sql"),
    ),
    (
        "spikes",
        "minutes at 3x or more of their trailing hour",
        include_str!("../queries/spikes.sql"),
    ),
    (
        "session_lengths",
        "presence sessions per day with p50/p90 length",
        include_str!("../queries/session_lengths.sql"),
    ),
];

/// The receipt status each latency query measures, for `{status}`.
pub const RECEIPT_STATUS: &[(&str, &str)] =
    &[("delivery_latency", "delivered"), ("read_latency", "read")];

/// The SQL of the ready query `name`, with its parameters put in.
pub fn query(name: &str) -> Result<String, AnalyticsError> {
    let sql = QUERIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, sql)| *sql)
        .ok_or_else(|| AnalyticsError::UnknownQuery(name.to_owned()))?;
    Ok(match RECEIPT_STATUS.iter().find(|(n, _)| *n == name) {
        Some((_, status)) => sql.replace("{status}", status),
        None => sql.to_owned(),
    })
}

/// A result: column names and rows of cells as ClickHouse prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The cells of one column, by name.
    pub fn column(&self, name: &str) -> Vec<&str> {
        let i = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name:?} in {:?}", self.columns));
        self.rows.iter().map(|r| r[i].as_str()).collect()
    }

    /// Aligned columns under a header, for a terminal.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            padded.join("  ").trim_end().to_owned() + "\n"
        };
        let mut out = line(&self.columns);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out += &line(&rule);
        for row in &self.rows {
            out += &line(row);
        }
        out += &format!("({} rows)\n", self.rows.len());
        out
    }
}

fn unescape(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len());
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

impl Table {
    /// A table from ClickHouse's `TabSeparatedWithNames`.
    pub fn from_tsv(bytes: &[u8]) -> Table {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.lines();
        let columns = lines
            .next()
            .map(|l| l.split('\t').map(unescape).collect())
            .unwrap_or_default();
        let rows = lines
            .map(|l| l.split('\t').map(unescape).collect())
            .collect();
        Table { columns, rows }
    }
}

/// Runs any SELECT on ClickHouse and returns its result as a [`Table`].
#[cfg(feature = "clickhouse")]
pub async fn run_sql(history: &ClickHouseHistory, sql: &str) -> Result<Table, AnalyticsError> {
    let sql = sql.trim().trim_end_matches(';');
    Ok(Table::from_tsv(&history.select_tsv(sql).await?))
}

/// Runs the ready query `name`.
#[cfg(feature = "clickhouse")]
pub async fn run(history: &ClickHouseHistory, name: &str) -> Result<Table, AnalyticsError> {
    run_sql(history, &query(name)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_is_put_in() {
        for (name, _, _) in QUERIES {
            let sql = query(name).unwrap();
            assert!(!sql.contains('{'), "{name} keeps a parameter: {sql}");
        }
        assert!(query("delivery_latency")
            .unwrap()
            .contains("status = 'delivered'"));
        assert!(query("read_latency").unwrap().contains("status = 'read'"));
        assert!(query("nope").is_err());
    }

    #[test]
    fn a_tab_separated_answer_becomes_a_table() {
        let t = Table::from_tsv(b"day\tusers\n2026-01-01\t3\nline\\tbreak\t0\n");
        assert_eq!(t.columns, ["day", "users"]);
        assert_eq!(t.rows, [["2026-01-01", "3"], ["line\tbreak", "0"]]);
    }
}
