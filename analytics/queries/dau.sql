-- Daily active users: users who sent a message or had the app in the
-- foreground (an active heartbeat) that day, from daily_active_users.
SELECT day, uniqExactMerge(users) AS dau
FROM daily_active_users
GROUP BY day
ORDER BY day
