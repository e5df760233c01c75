//! Where the time goes: reads a node's `/metrics` at the start and the end
//! of a window and prints, per stage of `parley_stage_latency_seconds`
//! (append, each job, push) and for the whole path
//! (`parley_e2e_latency_seconds`), how many items passed in the window and
//! their p50, p90 and p99, estimated from the histogram's bucket counts
//! (linear within a bucket, as Prometheus's `histogram_quantile` does).
//!
//! Run it while a load runs (benches/scripts/stages.sh does both).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Per-stage latency of a running Parley node over a window")]
struct Args {
    /// The node's base URL (its /metrics)
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Seconds between the two reads
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Series → (upper bound → cumulative count).
type Buckets = BTreeMap<String, Vec<(f64, f64)>>;

/// The `_bucket` series of the two histograms, by stage (`e2e` for the
/// whole path).
fn buckets(text: &str) -> Buckets {
    let mut out: Buckets = BTreeMap::new();
    for line in text.lines() {
        let (series, rest) =
            if let Some(r) = line.strip_prefix("parley_stage_latency_seconds_bucket{") {
                let stage = r.split("stage=\"").nth(1).and_then(|s| s.split('"').next());
                (stage.map(str::to_owned), r)
            } else if let Some(r) = line.strip_prefix("parley_e2e_latency_seconds_bucket{") {
                (Some("e2e".to_owned()), r)
            } else {
                continue;
            };
        let (Some(series), Some(le)) = (series, rest.split("le=\"").nth(1)) else {
            continue;
        };
        let le = le.split('"').next().unwrap_or("");
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        let Some(count) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        out.entry(series).or_default().push((le, count));
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The `q` quantile of cumulative `buckets`, in seconds.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return prev.0;
            }
            let within = count - prev.1;
            let frac = if within > 0.0 {
                (rank - prev.1) / within
            } else {
                1.0
            };
            return prev.0 + (le - prev.0) * frac;
        }
        prev = (le, count);
    }
    prev.0
}

async fn scrape(http: &reqwest::Client, url: &str) -> Result<Buckets> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
        .context("reading /metrics")?;
    Ok(buckets(&text))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::new();
    let before = scrape(&http, &args.url).await?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let after = scrape(&http, &args.url).await?;
    let mut rows = Vec::new();
    for (stage, end) in &after {
        let start = before.get(stage);
        // The window's own counts: the end's minus the start's, per bucket.
        let window: Vec<(f64, f64)> = end
            .iter()
            .map(|&(le, c)| {
                let was = start
                    .and_then(|s| s.iter().find(|b| b.0 == le))
                    .map_or(0.0, |b| b.1);
                (le, c - was)
            })
            .collect();
        let n = window.last().map_or(0.0, |b| b.1);
        let ms = |q| quantile(q, &window) * 1000.0;
        rows.push((stage.clone(), n, ms(0.5), ms(0.9), ms(0.99)));
    }
    if args.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(s, n, p50, p90, p99)| {
                serde_json::json!({"stage": s, "count": n, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99})
            })
            .collect();
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!(
            "{:<12} {:>10} {:>9} {:>9} {:>9}",
            "stage", "items", "p50 ms", "p90 ms", "p99 ms"
        );
        for (s, n, p50, p90, p99) in rows {
            println!("{s:<12} {n:>10} {p50:>9.2} {p90:>9.2} {p99:>9.2}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let b = [(0.001, 0.0), (0.01, 100.0), (f64::INFINITY, 100.0)];
        assert!((quantile(0.5, &b) - 0.0055).abs() < 1e-9);
        assert!((quantile(0.99, &b) - 0.00991).abs() < 1e-9);
        let text = "parley_stage_latency_seconds_bucket{stage=\"append\",le=\"0.001\"} 3\n\
                    parley_stage_latency_seconds_bucket{stage=\"append\",le=\"+Inf\"} 4\n\
                    parley_e2e_latency_seconds_bucket{le=\"0.5\"} 7\n";
        let got = buckets(text);
        assert_eq!(got["append"], vec![(0.001, 3.0), (f64::INFINITY, 4.0)]);
        assert_eq!(got["e2e"], vec![(0.5, 7.0)]);
    }
}
