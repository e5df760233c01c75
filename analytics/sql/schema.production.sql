-- Parley history schema for a current ClickHouse (23.x and later), one
-- shard shown; on a cluster, use the Replicated* engines with the same
-- ORDER BY and a Distributed table over each. README.md lists every
-- difference from sql/schema.sql (the 18.16 version the tests run) and why.
-- Statements are separated by a line holding only ";".

CREATE TABLE IF NOT EXISTS messages (
    msg_id UInt64 CODEC(Delta, ZSTD(1)),
    conversation String CODEC(ZSTD(1)),
    sender UInt64 CODEC(ZSTD(1)),
    recipient UInt64 CODEC(ZSTD(1)),
    group_id UInt64 CODEC(ZSTD(1)),
    kind LowCardinality(String),
    text String CODEC(ZSTD(3)),
    media_id String CODEC(ZSTD(1)),
    mime LowCardinality(String),
    caption String CODEC(ZSTD(3)),
    media_size UInt64 CODEC(ZSTD(1)),
    width UInt32 CODEC(ZSTD(1)),
    height UInt32 CODEC(ZSTD(1)),
    thumbnail UInt8,
    client_msg_id String CODEC(ZSTD(1)),
    from_device UInt64 CODEC(ZSTD(1)),
    ts UInt64 CODEC(Delta, ZSTD(1)),
    target UInt64 CODEC(ZSTD(1)),
    reply_to UInt64 CODEC(ZSTD(1)),
    forwarded UInt8,
    time DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(toInt64(ts)),
    day Date MATERIALIZED toDate(time),
    INDEX search_ngrams lowerUTF8(concat(text, ' ', caption)) TYPE ngrambf_v1(3, 65536, 3, 0) GRANULARITY 4
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (conversation, msg_id)
TTL day + INTERVAL 5 YEAR DELETE
SETTINGS non_replicated_deduplication_window = 1000
;
CREATE TABLE IF NOT EXISTS user_conversations (
    user UInt64,
    conversation String,
    last_msg_id UInt64
) ENGINE = ReplacingMergeTree(last_msg_id)
ORDER BY (user, conversation)
;
CREATE TABLE IF NOT EXISTS conversation_heads (
    conversation String,
    last_msg_id UInt64
) ENGINE = ReplacingMergeTree(last_msg_id)
ORDER BY conversation
;
CREATE TABLE IF NOT EXISTS read_marks (
    user UInt64,
    conversation String,
    up_to UInt64,
    ts UInt64
) ENGINE = ReplacingMergeTree(up_to)
ORDER BY (user, conversation)
;
CREATE TABLE IF NOT EXISTS receipts (
    msg_id UInt64,
    conversation String,
    sender UInt64,
    reader UInt64,
    status LowCardinality(String),
    sent_ts UInt64,
    ts UInt64,
    latency_ms UInt64 MATERIALIZED if(ts > sent_ts, ts - sent_ts, 0),
    sent_time DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(toInt64(sent_ts)),
    keep UInt64 MATERIALIZED 18446744073709551615 - ts
) ENGINE = ReplacingMergeTree(keep)
PARTITION BY toYYYYMM(sent_time)
ORDER BY (msg_id, reader, status)
TTL toDate(sent_time) + INTERVAL 400 DAY DELETE
;
CREATE TABLE IF NOT EXISTS presence_sessions (
    user UInt64,
    start_ts UInt64,
    end_ts UInt64,
    active_beats UInt64,
    duration_ms UInt64 MATERIALIZED if(end_ts > start_ts, end_ts - start_ts, 0),
    day Date MATERIALIZED toDate(fromUnixTimestamp64Milli(toInt64(start_ts)))
) ENGINE = ReplacingMergeTree(end_ts)
PARTITION BY toYYYYMM(day)
ORDER BY (user, start_ts)
TTL day + INTERVAL 400 DAY DELETE
;
CREATE TABLE IF NOT EXISTS volume_per_minute (
    minute DateTime('UTC'),
    kind LowCardinality(String),
    messages AggregateFunction(uniqExact, UInt64),
    senders AggregateFunction(uniqExact, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, kind)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS volume_per_minute_mv TO volume_per_minute AS
SELECT
    toStartOfInterval(toDateTime(intDiv(ts, 1000), 'UTC'), INTERVAL 1 MINUTE) AS minute,
    kind,
    uniqExactState(msg_id) AS messages,
    uniqExactState(sender) AS senders
FROM messages
GROUP BY minute, kind
;
CREATE TABLE IF NOT EXISTS daily_active_users (
    day Date,
    users AggregateFunction(uniqExact, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY day
;
CREATE MATERIALIZED VIEW IF NOT EXISTS daily_active_senders_mv TO daily_active_users AS
SELECT toDate(toDateTime(intDiv(ts, 1000), 'UTC')) AS day, uniqExactState(sender) AS users
FROM messages
GROUP BY day
;
CREATE MATERIALIZED VIEW IF NOT EXISTS daily_active_sessions_mv TO daily_active_users AS
SELECT toDate(toDateTime(intDiv(start_ts, 1000), 'UTC')) AS day, uniqExactState(user) AS users
FROM presence_sessions
WHERE active_beats > 0
GROUP BY day
