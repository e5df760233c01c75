//! The embedded log: append throughput by batch size and durability,
//! group commit under concurrent single-record appends, tail reads, and a
//! redb baseline for the same work (the reason the log is a segment log).
//!
//! `cargo bench -p parley-benches --bench log`
//! Records are 200 bytes. `os` = durability "os" (no fsync): benchmark only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parley_engines::{Durability, Log, ReadLimit, SegmentLog, SegmentLogOptions, TopicSpec};
use redb::{Database, TableDefinition};

const RECORD: usize = 200;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open(durability: Durability) -> (tempfile::TempDir, Arc<SegmentLog>) {
    let dir =
        tempfile::tempdir_in(std::env::var("PARLEY_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .unwrap();
    let opts = SegmentLogOptions {
        durability,
        ..Default::default()
    };
    let log = Arc::new(SegmentLog::open(dir.path(), opts).unwrap());
    (dir, log)
}

fn label(d: Durability) -> &'static str {
    match d {
        Durability::Fsync => "fsync",
        Durability::Os => "os",
    }
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("append");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for durability in [Durability::Fsync, Durability::Os] {
        for batch in [1usize, 64, 1024] {
            let (_dir, log) = open(durability);
            rt.block_on(log.ensure_topic(&TopicSpec::new("b", 1)))
                .unwrap();
            let payloads: Vec<Bytes> = (0..batch).map(|_| Bytes::from(vec![7u8; RECORD])).collect();
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(
                BenchmarkId::new(label(durability), format!("batch{batch}")),
                |b| {
                    b.to_async(&rt)
                        .iter(|| log.append("b", 0, payloads.clone()))
                },
            );
        }
    }
    g.finish();
}

/// `appenders` tasks, each appending batches of `batch` records one at a
/// time; one criterion iteration = one record.
fn concurrent(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("group_commit");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    for (appenders, batch) in [(64usize, 1usize), (4, 1024)] {
        let (_dir, log) = open(Durability::Fsync);
        rt.block_on(log.ensure_topic(&TopicSpec::new("b", 1)))
            .unwrap();
        let payloads: Vec<Bytes> = (0..batch).map(|_| Bytes::from(vec![7u8; RECORD])).collect();
        g.throughput(Throughput::Elements(1));
        let id = format!("fsync/{appenders}_appenders_x_batch{batch}");
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let rounds = (iters as usize).div_ceil(appenders * batch).max(1);
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..appenders)
                        .map(|_| {
                            let (log, payloads) = (log.clone(), payloads.clone());
                            tokio::spawn(async move {
                                for _ in 0..rounds {
                                    log.append("b", 0, payloads.clone()).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    // Scale to the iterations asked for.
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (rounds * appenders * batch) as f64)
                })
            })
        });
    }
    g.finish();
}

fn tail(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("tail");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let (_dir, log) = open(Durability::Os);
    rt.block_on(async {
        log.ensure_topic(&TopicSpec::new("b", 1)).await.unwrap();
        for _ in 0..200 {
            log.append(
                "b",
                0,
                (0..1024).map(|_| Bytes::from(vec![7u8; RECORD])).collect(),
            )
            .await
            .unwrap();
        }
    });
    let end = 200 * 1024u64;
    // A consumer catching up: sequential reads of 1,024 records.
    g.throughput(Throughput::Elements(1024));
    let mut from = 0u64;
    g.bench_function("catch_up_read_1024", |b| {
        b.to_async(&rt).iter(|| {
            let at = from;
            from = (from + 1024) % end;
            let log = log.clone();
            async move {
                log.read("b", 0, at, ReadLimit::records(1024))
                    .await
                    .unwrap()
            }
        })
    });
    // A waiting tailer woken by one append: append -> tail returns.
    g.throughput(Throughput::Elements(1));
    g.bench_function("append_to_tail_wakeup", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let log = log.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let next = log.bounds("b", 0).await.unwrap().end;
                    let tailer = {
                        let log = log.clone();
                        tokio::spawn(async move {
                            log.tail("b", 0, next, ReadLimit::records(1)).await.unwrap()
                        })
                    };
                    tokio::task::yield_now().await;
                    let start = Instant::now();
                    log.append("b", 0, vec![Bytes::from(vec![1u8; RECORD])])
                        .await
                        .unwrap();
                    tailer.await.unwrap();
                    total += start.elapsed();
                }
                total
            }
        })
    });
    g.finish();
}

/// The same appends into redb, one transaction per batch, durable commit:
/// the measured alternative to the segment log.
fn redb_baseline(c: &mut Criterion) {
    const T: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
    let mut g = c.benchmark_group("redb_baseline");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for batch in [1usize, 1024] {
        let dir =
            tempfile::tempdir_in(std::env::var("PARLEY_BENCH_DIR").unwrap_or_else(|_| ".".into()))
                .unwrap();
        let db = Database::create(dir.path().join("b.redb")).unwrap();
        let payload = vec![7u8; RECORD];
        let mut next = 0u64;
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(BenchmarkId::new("fsync", format!("batch{batch}")), |b| {
            b.iter(|| {
                let tx = db.begin_write().unwrap();
                {
                    let mut t = tx.open_table(T).unwrap();
                    for _ in 0..batch {
                        t.insert(next, payload.as_slice()).unwrap();
                        next += 1;
                    }
                }
                tx.commit().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, append, concurrent, tail, redb_baseline);
criterion_main!(benches);
