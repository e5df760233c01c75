-- Groups by size, measured as distinct senders (member lists live in the
-- state store, not in the history).
SELECT
    size,
    count() AS groups,
    sum(messages) AS messages
FROM
(
    SELECT
        conversation,
        uniqExact(sender) AS senders,
        uniqExact(msg_id) AS messages,
        multiIf(senders <= 2, '1-2', senders <= 10, '3-10', senders <= 50, '11-50',
                senders <= 256, '51-256', '257+') AS size
    FROM messages
    WHERE group_id != 0
    GROUP BY conversation
)
GROUP BY size
ORDER BY min(senders)
