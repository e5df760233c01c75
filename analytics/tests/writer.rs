//! The history writer's jobs over log records, into a real ClickHouse:
//! receipts expanded per message with their latencies, presence sessions,
//! and both across a restart of the writer (fresh memory) and a replay.

use std::sync::Arc;

use bytes::Bytes;
use parley_analytics::{HistoryWriter, SessionWriter};
use parley_engines::clickhouse::ClickHouseHistory;
use parley_engines::contract::servers::ClickHouseServer;
use parley_engines::job::Processor;
use parley_engines::Record;
use parley_schemas::codec;
use parley_schemas::event::{Event, Heartbeat, MessageSent, Receipt};
use parley_schemas::ids::{ConversationId, DeviceId, MessageId, UserId};
use parley_schemas::wire::{Body, ReceiptStatus, Recipient};

const T: u64 = 1_790_000_000_000;

fn records(events: &[Event]) -> Vec<Record> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| Record {
            offset: i as u64,
            timestamp: 0,
            payload: Bytes::from(codec::encode(e)),
        })
        .collect()
}

fn message(from: u64, to: u64, at: u64) -> MessageSent {
    MessageSent {
        msg_id: MessageId::from_parts(T + at, 1, 0),
        conversation: ConversationId::direct(UserId(from), UserId(to)),
        from: UserId(from),
        from_device: DeviceId(1),
        to: Recipient::User(UserId(to)),
        client_msg_id: format!("c{at}"),
        body: Body::Text("hi".into()),
        ts: T + at,
        reply_to: None,
        forwarded: false,
    }
}

fn receipt(by: u64, of: &MessageSent, status: ReceiptStatus, at: u64) -> Event {
    Event::Receipt(Receipt {
        conversation: of.conversation,
        by: UserId(by),
        device: DeviceId(1),
        up_to: of.msg_id,
        status,
        ts: T + at,
    })
}

fn sql(ch: &ClickHouseServer, q: &str) -> Vec<String> {
    ch.sql(q).lines().map(str::to_owned).collect()
}

async fn history(ch: &ClickHouseServer) -> Arc<ClickHouseHistory> {
    let h = ClickHouseHistory::connect(&ch.url).unwrap();
    h.migrate().await.unwrap();
    Arc::new(h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_become_one_row_per_message_with_its_latency() {
    let ch = ClickHouseServer::start();
    let h = history(&ch).await;
    let (m1, m2, m3) = (
        message(1, 2, 1000),
        message(1, 2, 2000),
        message(1, 2, 3000),
    );
    let m4 = message(2, 1, 3500);
    let first = records(&[
        Event::MessageSent(m1.clone()),
        Event::MessageSent(m2.clone()),
        receipt(2, &m2, ReceiptStatus::Delivered, 2500),
        Event::MessageSent(m3.clone()),
        Event::MessageSent(m4.clone()),
        // Bob reads up to m4, his own: it covers m1..m3 of Alice's.
        receipt(2, &m4, ReceiptStatus::Read, 4000),
        receipt(1, &m4, ReceiptStatus::Read, 5000),
    ]);
    let mut writer = HistoryWriter::new(h.clone());
    assert!(writer.process(0, &first).await.unwrap().is_empty());
    let rows = "SELECT msg_id, reader, status, min(latency_ms) FROM parley.receipts \
                GROUP BY msg_id, reader, status ORDER BY msg_id, status";
    let id = |m: &MessageSent| m.msg_id.0;
    let expected = vec![
        format!("{}\t2\tdelivered\t1500", id(&m1)),
        format!("{}\t2\tread\t3000", id(&m1)),
        format!("{}\t2\tdelivered\t500", id(&m2)),
        format!("{}\t2\tread\t2000", id(&m2)),
        format!("{}\t2\tread\t1000", id(&m3)),
        format!("{}\t1\tread\t1500", id(&m4)),
    ];
    assert_eq!(sql(&ch, rows), expected);

    // A restarted writer (nothing in memory) gets a receipt reaching below
    // what it has seen: it loads the messages back from the history. The
    // earlier receipts of m1 and m2 keep their latencies.
    let mut restarted = HistoryWriter::new(h.clone());
    let later = records(&[receipt(2, &m3, ReceiptStatus::Delivered, 6000)]);
    restarted.process(0, &later).await.unwrap();
    let mut expected = expected;
    expected.insert(4, format!("{}\t2\tdelivered\t3000", id(&m3)));
    assert_eq!(sql(&ch, rows), expected);

    // A replay of the first batch by yet another writer changes nothing.
    HistoryWriter::new(h.clone())
        .process(0, &first)
        .await
        .unwrap();
    assert_eq!(sql(&ch, rows), expected);
    assert_eq!(sql(&ch, "SELECT count() FROM parley.messages FINAL"), ["4"]);
    // Read marks: Bob read up to m4, Alice up to m4.
    assert_eq!(
        sql(
            &ch,
            "SELECT user, max(up_to) FROM parley.read_marks GROUP BY user ORDER BY user"
        ),
        [format!("1\t{}", id(&m4)), format!("2\t{}", id(&m4))]
    );
}

fn beat(device: u64, at: u64, active: bool, closing: bool) -> Event {
    Event::Heartbeat(Heartbeat {
        user: UserId(7),
        device: DeviceId(device),
        active,
        closing,
        ts: T + at,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_become_sessions_across_a_restart() {
    let ch = ClickHouseServer::start();
    let h = history(&ch).await;
    let rows = "SELECT start_ts - 1790000000000, max(end_ts) - 1790000000000, max(active_beats) \
                FROM parley.presence_sessions WHERE user = 7 GROUP BY start_ts ORDER BY start_ts";
    let mut writer = SessionWriter::new(h.clone());
    writer
        .process(
            0,
            &records(&[beat(1, 0, true, false), beat(1, 5_000, true, false)]),
        )
        .await
        .unwrap();
    assert_eq!(sql(&ch, rows), ["0\t5000\t2"]);

    // Restarted: it continues the live session it finds in the history.
    // A background heartbeat extends it without counting as activity; a
    // second device joins; 40 s of silence end the session; a new one
    // begins and ends when the last device closes.
    let mut restarted = SessionWriter::new(h.clone());
    let batch = records(&[
        beat(1, 5_000, true, false), // replayed: already counted
        beat(1, 10_000, false, false),
        beat(2, 12_000, true, false),
        beat(1, 52_000, true, false),
        beat(1, 55_000, false, true),
    ]);
    restarted.process(0, &batch).await.unwrap();
    assert_eq!(
        sql(&ch, rows),
        ["0\t12000\t3", "52000\t55000\t1"],
        "sessions: [0, 12 s] with 3 active beats, then [52 s, 55 s]"
    );
    // The session ended by its last device: the next heartbeat, 2 s later,
    // starts another.
    restarted
        .process(0, &records(&[beat(1, 57_000, true, false)]))
        .await
        .unwrap();
    assert_eq!(
        sql(&ch, rows),
        ["0\t12000\t3", "52000\t55000\t1", "57000\t57000\t1"]
    );
}
