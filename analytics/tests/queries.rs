//! Every ready query against a real ClickHouse, over seeded history whose
//! answers are worked out by hand below. The seed goes in through the
//! history store's own write path (so the materialized views fill as in
//! production), twice, since the writer replays batches after a crash.

use parley_analytics::queries::{run, Table, QUERIES};
use parley_engines::clickhouse::ClickHouseHistory;
use parley_engines::contract::servers::ClickHouseServer;
use parley_engines::history::{History, HistoryBatch, MessageReceipt, PresenceSession};
use parley_schemas::event::MessageSent;
use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::{Body, Media, ReceiptStatus, Recipient};

/// 2026-01-01 00:00:00 UTC.
const T: u64 = 1_767_225_600_000;
const S: u64 = 1_000;
const MIN: u64 = 60 * S;
const DAY: u64 = 24 * 60 * MIN;

struct Seed {
    batch: HistoryBatch,
    seq: u16,
}

impl Seed {
    fn push(
        &mut self,
        conversation: ConversationId,
        from: u64,
        to: Recipient,
        ts: u64,
        body: Body,
    ) -> MessageSent {
        self.seq += 1;
        let m = MessageSent {
            msg_id: MessageId::from_parts(ts, 1, self.seq),
            conversation,
            from: UserId(from),
            from_device: DeviceId(1),
            to,
            client_msg_id: format!("c{}", self.seq),
            body,
            ts,
            reply_to: None,
            forwarded: false,
        };
        self.batch.messages.push(m.clone());
        m
    }

    fn direct(&mut self, from: u64, to: u64, ts: u64) -> MessageSent {
        let c = ConversationId::direct(UserId(from), UserId(to));
        self.push(
            c,
            from,
            Recipient::User(UserId(to)),
            ts,
            Body::Text("hi".into()),
        )
    }

    fn media(&mut self, from: u64, to: u64, ts: u64, mime: &str, size: u64) -> MessageSent {
        let c = ConversationId::direct(UserId(from), UserId(to));
        let body = Body::Media(Media {
            media_id: format!("m{}", self.seq),
            mime: Some(mime.into()),
            size: Some(size),
            ..Media::default()
        });
        self.push(c, from, Recipient::User(UserId(to)), ts, body)
    }

    fn group(&mut self, group: u64, from: u64, ts: u64) -> MessageSent {
        let g = GroupId(group);
        self.push(
            ConversationId::group(g),
            from,
            Recipient::Group(g),
            ts,
            Body::Text("hey".into()),
        )
    }

    fn receipt(&mut self, m: &MessageSent, by: u64, status: ReceiptStatus, ts: u64) {
        self.batch.receipts.push(MessageReceipt {
            conversation: m.conversation,
            msg_id: m.msg_id,
            sender: m.from,
            by: UserId(by),
            status,
            sent_ts: m.ts,
            ts,
        });
    }

    fn session(&mut self, user: u64, start: u64, end: u64, active_beats: u64) {
        self.batch.sessions.push(PresenceSession {
            user: UserId(user),
            start,
            end,
            active_beats,
        });
    }
}

fn seed() -> HistoryBatch {
    let mut s = Seed {
        batch: HistoryBatch::default(),
        seq: 0,
    };
    // Day 1, minute 0: three texts 1 -> 2 and an image 2 -> 1.
    let first: Vec<_> = (1..=3).map(|i| s.direct(1, 2, T + i * S)).collect();
    s.media(2, 1, T + 10 * S, "image/png", 250_000);
    // Delivered after 100, 200, 300 ms; the first also a second time,
    // later (a replayed receipt: the earliest counts).
    for (i, m) in first.iter().enumerate() {
        s.receipt(m, 2, ReceiptStatus::Delivered, m.ts + 100 * (i as u64 + 1));
        // All three read at T+6s: 5000, 4000 and 3000 ms.
        s.receipt(m, 2, ReceiptStatus::Read, T + 6 * S);
    }
    s.receipt(&first[0], 2, ReceiptStatus::Delivered, first[0].ts + 5_000);
    // Minute 1: two texts 3 -> 1.
    s.direct(3, 1, T + 61 * S);
    s.direct(3, 1, T + 62 * S);
    // Minute 2: group 7 has three senders, group 8 one.
    for (i, from) in [1, 2, 3].into_iter().enumerate() {
        s.group(7, from, T + 121 * S + i as u64);
    }
    s.group(8, 4, T + 124 * S);
    // Minutes 10..=69: one message a minute 5 -> 4; minute 70: forty 4 -> 5.
    for minute in 10..70 {
        s.direct(5, 4, T + minute * MIN + S);
    }
    for i in 0..40 {
        s.direct(4, 5, T + 70 * MIN + i * 100);
    }
    // Day 2: a video 1 -> 2 and a text 2 -> 1.
    s.media(1, 2, T + DAY, "video/mp4", 9_000_000);
    s.direct(2, 1, T + DAY + S);
    // February: one text.
    s.direct(1, 2, T + 31 * DAY);
    // Presence: user 6 was in the app (a session written as it grew),
    // user 7 only in the background.
    s.session(6, T, T + 30 * S, 2);
    s.session(6, T, T + 60 * S, 3);
    s.session(7, T + 100 * S, T + 110 * S, 0);
    s.batch
}

async fn table(history: &ClickHouseHistory, name: &str) -> Table {
    run(history, name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn rows(t: &Table) -> Vec<Vec<&str>> {
    t.rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ready_queries_return_the_seeded_numbers() {
    let server = ClickHouseServer::start();
    let history = ClickHouseHistory::connect(&server.url).unwrap();
    history.migrate().await.unwrap();
    let batch = seed();
    history.write(&batch).await.unwrap();
    history.write(&batch).await.unwrap();

    let t = table(&history, "volume_per_minute").await;
    assert_eq!(t.columns, ["minute", "kind", "messages", "senders"]);
    assert_eq!(
        rows(&t)[..5],
        [
            ["2026-01-01 00:00:00", "media", "1", "1"],
            ["2026-01-01 00:00:00", "text", "3", "1"],
            ["2026-01-01 00:01:00", "text", "2", "1"],
            ["2026-01-01 00:02:00", "text", "4", "4"],
            ["2026-01-01 00:10:00", "text", "1", "1"],
        ]
    );
    assert_eq!(
        t.rows.len(),
        4 + 60 + 1 + 3,
        "minutes 0, 1, 2, 10..=70, two on day 2, one in February"
    );

    let t = table(&history, "top_conversations").await;
    assert_eq!(
        t.column("conversation"),
        ["d:4:5", "d:1:2", "g:7", "d:1:3", "g:8"]
    );
    assert_eq!(t.column("messages"), ["100", "7", "3", "2", "1"]);
    assert_eq!(t.column("senders"), ["2", "2", "3", "1", "1"]);

    let t = table(&history, "delivery_latency").await;
    assert_eq!(
        rows(&t),
        [["2026-01-01 00:00:00", "3", "200", "300", "300"]],
        "hour, receipts, p50, p99, max"
    );
    let t = table(&history, "read_latency").await;
    assert_eq!(
        rows(&t),
        [["2026-01-01 00:00:00", "3", "4000", "5000", "5000"]]
    );

    let t = table(&history, "dau").await;
    assert_eq!(
        rows(&t),
        [
            ["2026-01-01", "6"],
            ["2026-01-02", "2"],
            ["2026-02-01", "1"]
        ],
        "senders 1-5 and user 6 (active in the app); user 7 was only in the background"
    );
    let t = table(&history, "dau_mau").await;
    assert_eq!(
        rows(&t),
        [
            ["2026-01-01", "6", "4", "0.667"],
            ["2026-02-01", "1", "1", "1"]
        ]
    );

    let t = table(&history, "group_sizes").await;
    assert_eq!(rows(&t), [["1-2", "1", "1"], ["3-10", "1", "3"]]);

    let t = table(&history, "media_share").await;
    assert_eq!(
        rows(&t),
        [
            [
                "2026-01-01",
                "110",
                "1",
                "0.0091",
                "1",
                "250000",
                "0",
                "0",
                "250000"
            ],
            [
                "2026-01-02",
                "2",
                "1",
                "0.5",
                "0",
                "0",
                "1",
                "9000000",
                "9000000"
            ],
            ["2026-02-01", "1", "0", "0", "0", "0", "0", "0", "0"],
        ]
    );

    let t = table(&history, "spikes").await;
    assert_eq!(
        rows(&t),
        [["2026-01-01 01:10:00", "40", "1", "40"]],
        "the one minute at 40x its trailing hour"
    );

    let t = table(&history, "session_lengths").await;
    assert_eq!(rows(&t), [["2026-01-01", "2", "2", "60", "60"]]);

    // Every query listed runs (the ones above are all of them).
    assert_eq!(QUERIES.len(), 10);
}
