-- Presence sessions per day: how many, by how many users, and their p50
-- and p90 length in seconds. A session's latest row (largest end) counts.
SELECT
    day,
    count() AS sessions,
    uniqExact(user) AS users,
    quantileExact(0.5)(duration_ms) / 1000 AS p50_s,
    quantileExact(0.9)(duration_ms) / 1000 AS p90_s
FROM
(
    SELECT user, start_ts, any(day) AS day, max(duration_ms) AS duration_ms
    FROM presence_sessions
    GROUP BY user, start_ts
)
GROUP BY day
ORDER BY day
