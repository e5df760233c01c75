-- Parley history schema, as created by `parley migrate` and by the history
-- store on start. This version runs on ClickHouse 18.16 (what the tests
-- start); sql/schema.production.sql is the same schema with the newer
-- features a current server should use (README.md says which and why).
-- Statements are separated by a line holding only ";".
-- Times are UInt64 milliseconds since the Unix epoch; `time`/`day`
-- columns are derived for grouping. The server runs in UTC.

CREATE TABLE IF NOT EXISTS messages (
    msg_id UInt64,
    conversation String,
    sender UInt64,
    recipient UInt64,
    group_id UInt64,
    kind String,
    text String,
    media_id String,
    mime String,
    caption String,
    media_size UInt64,
    width UInt32,
    height UInt32,
    thumbnail UInt8,
    client_msg_id String,
    from_device UInt64,
    ts UInt64,
    target UInt64,
    reply_to UInt64,
    forwarded UInt8,
    time DateTime MATERIALIZED toDateTime(intDiv(ts, 1000)),
    day Date MATERIALIZED toDate(toDateTime(intDiv(ts, 1000)))
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (conversation, msg_id)
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
    status String,
    sent_ts UInt64,
    ts UInt64,
    latency_ms UInt64 MATERIALIZED if(ts > sent_ts, ts - sent_ts, 0),
    sent_time DateTime MATERIALIZED toDateTime(intDiv(sent_ts, 1000)),
    keep UInt64 MATERIALIZED 18446744073709551615 - ts
) ENGINE = ReplacingMergeTree(keep)
PARTITION BY toYYYYMM(toDate(sent_time))
ORDER BY (msg_id, reader, status)
;
CREATE TABLE IF NOT EXISTS presence_sessions (
    user UInt64,
    start_ts UInt64,
    end_ts UInt64,
    active_beats UInt64,
    duration_ms UInt64 MATERIALIZED if(end_ts > start_ts, end_ts - start_ts, 0),
    day Date MATERIALIZED toDate(toDateTime(intDiv(start_ts, 1000)))
) ENGINE = ReplacingMergeTree(end_ts)
PARTITION BY toYYYYMM(day)
ORDER BY (user, start_ts)
;
CREATE TABLE IF NOT EXISTS volume_per_minute (
    minute DateTime,
    kind String,
    messages AggregateFunction(uniqExact, UInt64),
    senders AggregateFunction(uniqExact, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, kind)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS volume_per_minute_mv TO volume_per_minute AS
SELECT
    toStartOfMinute(toDateTime(intDiv(ts, 1000))) AS minute,
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
SELECT toDate(toDateTime(intDiv(ts, 1000))) AS day, uniqExactState(sender) AS users
FROM messages
GROUP BY day
;
CREATE MATERIALIZED VIEW IF NOT EXISTS daily_active_sessions_mv TO daily_active_users AS
SELECT toDate(toDateTime(intDiv(start_ts, 1000))) AS day, uniqExactState(user) AS users
FROM presence_sessions
WHERE active_beats > 0
GROUP BY day
