-- Spike detection: minutes whose volume is at least 3 times the mean per
-- minute of the hour before them (minutes with no messages count as 0),
-- and at least 10 messages. New Year's Eve shows here first.
SELECT
    minute,
    messages,
    round(baseline, 2) AS baseline,
    round(messages / baseline, 2) AS ratio
FROM
(
    SELECT
        minute,
        messages,
        arraySum(arrayFilter((c, m) -> m >= minute - 3600 AND m < minute, all_counts, all_minutes)) / 60 AS baseline
    FROM
    (
        SELECT groupArray(minute) AS all_minutes, groupArray(messages) AS all_counts
        FROM
        (
            SELECT minute, uniqExactMerge(messages) AS messages
            FROM volume_per_minute
            GROUP BY minute
            ORDER BY minute
        )
    )
    ARRAY JOIN all_minutes AS minute, all_counts AS messages
)
WHERE baseline > 0 AND messages >= 10 AND messages >= 3 * baseline
ORDER BY minute
