-- The 20 busiest conversations, with their distinct senders and first and
-- last message times.
SELECT
    conversation,
    uniqExact(msg_id) AS messages,
    uniqExact(sender) AS senders,
    min(time) AS first_message,
    max(time) AS last_message
FROM messages
GROUP BY conversation
ORDER BY messages DESC, conversation
LIMIT 20
