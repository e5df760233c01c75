//! The two history schemas stay in step: the 18.16 one the store creates
//! (and the tests run) and the production one (`sql/schema.production.sql`)
//! must have the same tables and views, the same columns in the same order
//! with the same types once the production-only wrappers are set aside
//! (`LowCardinality`, `CODEC`, `DateTime64` for `DateTime`), the same
//! `ORDER BY`, and views that read and write the same tables. What may
//! differ is listed in README.md: codecs, TTLs, time functions, indexes.

use parley_engines::clickhouse::{statements, SCHEMA};

const PRODUCTION: &str = include_str!("../sql/schema.production.sql");

#[derive(Debug, PartialEq, Eq)]
struct Object {
    /// `TABLE name` or `VIEW name TO target FROM source`.
    what: String,
    /// `(column, type)` of a table, in order.
    columns: Vec<(String, String)>,
    order_by: Option<String>,
}

/// The type a production column would have on 18.16.
fn base_type(t: &str) -> String {
    let t = t.trim();
    if let Some(inner) = t
        .strip_prefix("LowCardinality(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return base_type(inner);
    }
    if t.starts_with("DateTime") {
        return "DateTime".into();
    }
    t.to_owned()
}

fn objects(schema: &str) -> Vec<Object> {
    statements(schema)
        .iter()
        .map(|s| {
            let s = s.trim();
            let words: Vec<&str> = s.split_whitespace().collect();
            let name = |after: &str| {
                let i = words.iter().position(|w| *w == after).expect(after);
                words[i + 1].trim_end_matches('(').to_owned()
            };
            if s.starts_with("CREATE MATERIALIZED VIEW") {
                let source = name("FROM");
                return Object {
                    what: format!("VIEW {} TO {} FROM {source}", name("EXISTS"), name("TO")),
                    columns: Vec::new(),
                    order_by: None,
                };
            }
            assert!(s.starts_with("CREATE TABLE"), "unexpected statement: {s}");
            let open = s.find('(').expect("columns");
            let close = s.find("\n) ENGINE").expect("end of columns");
            let columns = s[open + 1..close]
                .lines()
                .map(|l| l.trim().trim_end_matches(','))
                .filter(|l| !l.is_empty())
                // Data-skipping indexes are production-only (none on 18.16).
                .filter(|l| !l.starts_with("INDEX "))
                .map(|l| {
                    let (col, rest) = l.split_once(' ').expect("a column and its type");
                    // The type ends where a column option begins.
                    let end = [" MATERIALIZED", " CODEC(", " DEFAULT"]
                        .iter()
                        .filter_map(|k| rest.find(k))
                        .min()
                        .unwrap_or(rest.len());
                    (col.to_owned(), base_type(&rest[..end]))
                })
                .collect();
            let order_by = s
                .lines()
                .find_map(|l| l.strip_prefix("ORDER BY "))
                .map(str::to_owned);
            Object {
                what: format!("TABLE {}", name("EXISTS")),
                columns,
                order_by,
            }
        })
        .collect()
}

#[test]
fn production_schema_matches_the_tested_one() {
    let tested = objects(SCHEMA);
    let production = objects(PRODUCTION);
    assert!(tested.len() >= 10, "parsed too little: {tested:?}");
    let names = |o: &[Object]| o.iter().map(|x| x.what.clone()).collect::<Vec<_>>();
    assert_eq!(names(&tested), names(&production), "tables and views");
    for (t, p) in tested.iter().zip(&production) {
        assert_eq!(t, p, "{} differs between the schemas", t.what);
    }
}

#[test]
fn the_comparison_sees_a_drifted_column() {
    let drifted = SCHEMA.replacen("sender UInt64,", "sender UInt32,", 1);
    assert_ne!(objects(SCHEMA), objects(&drifted));
    let renamed = SCHEMA.replacen("ORDER BY (conversation, msg_id)", "ORDER BY msg_id", 1);
    assert_ne!(objects(SCHEMA), objects(&renamed));
}
