-- Messages and distinct senders per minute, by kind (text, media), from the
-- volume_per_minute materialized view. uniqExact over msg_id keeps replays
-- from counting a message twice.
SELECT
    minute,
    kind,
    uniqExactMerge(messages) AS messages,
    uniqExactMerge(senders) AS senders
FROM volume_per_minute
GROUP BY minute, kind
ORDER BY minute, kind
