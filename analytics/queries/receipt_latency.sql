-- Send-to-receipt latency per hour of sending: receipts, p50, p99 and max in
-- milliseconds. A message's earliest receipt of the status per reader counts
-- (a receipt written twice by a replay counts once). `parley analytics`
-- runs it as delivery_latency ('delivered') and read_latency ('read'); in
-- clickhouse-client, put the status in for {status}.
SELECT
    hour,
    count() AS receipts,
    quantileExact(0.5)(latency_ms) AS p50_ms,
    quantileExact(0.99)(latency_ms) AS p99_ms,
    max(latency_ms) AS max_ms
FROM
(
    SELECT
        toStartOfHour(any(sent_time)) AS hour,
        min(latency_ms) AS latency_ms
    FROM receipts
    WHERE status = '{status}'
    GROUP BY msg_id, reader
)
GROUP BY hour
ORDER BY hour
