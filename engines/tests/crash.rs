//! SIGKILL crash test: a child process appends in a loop and prints each
//! acknowledged batch; it is killed at random moments, 25 rounds, and the
//! log is reopened after each. Every acknowledged record must be there byte
//! for byte, nothing but well-formed records may be there, and appends go on.

#[path = "../src/bin/crash_appender/record.rs"]
mod record;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use parley_engines::{Log, ReadLimit, SegmentLog, SegmentLogOptions};

const ROUNDS: u64 = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_record_is_lost_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    // offset -> tag, for every record the children saw acknowledged.
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut last_end = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley-crash-appender"))
            .arg(dir.path())
            .arg(round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the appender");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let f: Vec<u64> = line
                    .split(' ')
                    .skip(1)
                    .map(|x| x.parse().unwrap())
                    .collect();
                if tx.send((f[0], f[1], f[2])).is_err() {
                    break;
                }
            }
        });
        // Wait for the first ack, so every round proves appends continue,
        // then kill at a random moment.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the child acknowledged an append");
        std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 150));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let mut round_acks = vec![first];
        round_acks.extend(rx.try_iter());
        for (offset, count, base) in &round_acks {
            for k in 0..*count {
                assert!(
                    acked.insert(offset + k, base + k).is_none(),
                    "offset {} acked twice",
                    offset + k
                );
            }
        }

        let log = SegmentLog::open(dir.path(), SegmentLogOptions::default()).unwrap();
        let b = log.bounds("crash", 0).await.unwrap();
        assert!(b.end > last_end, "round {round}: appends continued");
        last_end = b.end;
        let mut from = 0;
        while from < b.end {
            let batch = log
                .read("crash", 0, from, ReadLimit::default())
                .await
                .unwrap();
            for r in &batch.records {
                let tag = record::tag_of(&r.payload).unwrap_or_else(|| {
                    panic!("round {round}: garbage record at offset {}", r.offset)
                });
                if let Some(&want) = acked.get(&r.offset) {
                    assert_eq!(
                        tag, want,
                        "round {round}: offset {} holds another record",
                        r.offset
                    );
                }
            }
            assert_eq!(
                batch.records.first().map(|r| r.offset),
                Some(from),
                "dense offsets"
            );
            from = batch.next_offset;
        }
        assert_eq!(from, b.end);
        let max_acked = acked.keys().max().copied().unwrap_or(0);
        assert!(
            b.end > max_acked,
            "round {round}: acked offset {max_acked} beyond end {}",
            b.end
        );
    }
    assert!(
        acked.len() > ROUNDS as usize,
        "{} acked records",
        acked.len()
    );
}
