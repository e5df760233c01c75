-- Per day: all messages, media messages and their share; images and videos
-- by count and bytes; all media bytes. Bytes are each file's size as the
-- server stored it (0 for messages from before sizes were kept). Rows are
-- deduplicated by msg_id first (ReplacingMergeTree merges later).
SELECT
    day,
    count() AS messages,
    countIf(kind = 'media') AS media,
    round(media / messages, 4) AS media_share,
    countIf(kind = 'media' AND mime LIKE 'image/%') AS images,
    sumIf(media_size, kind = 'media' AND mime LIKE 'image/%') AS image_bytes,
    countIf(kind = 'media' AND mime LIKE 'video/%') AS videos,
    sumIf(media_size, kind = 'media' AND mime LIKE 'video/%') AS video_bytes,
    sumIf(media_size, kind = 'media') AS media_bytes
FROM
(
    SELECT day, msg_id, any(kind) AS kind, any(mime) AS mime, any(media_size) AS media_size
    FROM messages
    GROUP BY day, msg_id
)
GROUP BY day
ORDER BY day
