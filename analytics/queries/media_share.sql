-- Per day: all messages, media messages, their share, and media by MIME
-- type (unknown types as '').
SELECT
    day,
    uniqExact(msg_id) AS messages,
    uniqExactIf(msg_id, kind = 'media') AS media,
    round(media / messages, 4) AS media_share,
    uniqExactIf(msg_id, kind = 'media' AND mime LIKE 'image/%') AS images,
    uniqExactIf(msg_id, kind = 'media' AND mime LIKE 'video/%') AS videos
FROM messages
GROUP BY day
ORDER BY day
