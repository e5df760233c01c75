//! `/metrics` carries the pipeline's telemetry. Its own test binary: the
//! Prometheus registry is per process.

mod common;

use common::*;
use serde_json::json;

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_appends_deliveries_errors_sockets_latency_and_lag() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_alice, bob) = alice_and_bob(&s.url).await;
    let mut a = Client::connect(&s.url, &login(&s.url, "alice", None).await.0).await;
    let mut b = Client::connect(&s.url, &login(&s.url, "bob", None).await.0).await;
    for i in 0..5 {
        a.say(&bob.id, &format!("m-{i}"), "hi").await;
        b.expect("msg").await;
    }
    a.send(json!({"type": "nope"})).await;
    a.expect("error").await;

    let text = metrics_text(&s.url).await;
    // 5 messages + 2 connect heartbeats.
    assert!(value(&text, "parley_appends_records_total") >= 7.0);
    assert_eq!(value(&text, "parley_deliveries_frames_total"), 5.0);
    assert_eq!(
        value(&text, "parley_errors_total{code=\"bad_request\"}"),
        1.0
    );
    assert_eq!(value(&text, "parley_sockets_connected"), 2.0);
    let cap = parley_ingest::Limits::default().sockets as f64;
    assert_eq!(value(&text, "parley_sockets_limit"), cap);
    assert_eq!(value(&text, "parley_e2e_latency_seconds_count"), 5.0);
    assert!(value(&text, "parley_e2e_latency_seconds_sum") > 0.0);
    assert_eq!(
        value(
            &text,
            "parley_consumer_lag_records{job=\"router\",partition=\"0\"}"
        ),
        0.0
    );
    for job in ["router", "presence", "deliver"] {
        assert!(
            text.contains(&format!("parley_consumer_lag_records{{job=\"{job}\"")),
            "lag of {job}"
        );
    }
    // Each stage's latency: the edge's appends, every job (the router and
    // the sequencer, `deliver`, among them), the pushes to sockets.
    let stage = |name: &str| {
        let series = format!("parley_stage_latency_seconds_count{{stage=\"{name}\"}}");
        value(&text, &series)
    };
    assert!(stage("append") >= 5.0, "append");
    for name in ["router", "deliver", "push"] {
        assert!(stage(name) >= 1.0, "{name}");
    }
    assert!(
        !text.contains("user=\"") && !text.contains("user_id=\""),
        "no user ids in labels"
    );
    s.stop().await;
}
