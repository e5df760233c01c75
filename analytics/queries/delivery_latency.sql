-- Send-to-delivered latency per hour of sending: receipts, p50, p99 and max in
-- milliseconds. A message's earliest 'delivered' receipt per reader counts
-- (a receipt written twice by a replay counts once).
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
    WHERE status = 'delivered'
    GROUP BY msg_id, reader
)
GROUP BY hour
ORDER BY hour
