-- Per calendar month: monthly active users, the mean of the daily active
-- users over the days with activity, and their ratio ("stickiness").
SELECT
    month,
    mau,
    round(mean_dau, 2) AS mean_dau,
    round(mean_dau / mau, 3) AS dau_over_mau
FROM
(
    SELECT toStartOfMonth(day) AS month, uniqExactMerge(users) AS mau
    FROM daily_active_users
    GROUP BY month
)
ANY INNER JOIN
(
    SELECT month, avg(dau) AS mean_dau
    FROM
    (
        SELECT day, toStartOfMonth(day) AS month, uniqExactMerge(users) AS dau
        FROM daily_active_users
        GROUP BY day
    )
    GROUP BY month
) USING month
ORDER BY month
