-- Dead letters: what was refused, where and why, with the first and last time it happened.
-- param days UInt32 = 7: only dead letters received in this many days before now
SELECT
    stage,
    reason,
    source_topic,
    count() AS letters,
    min(received_at) AS first_received_at,
    max(received_at) AS last_received_at,
    any(error) AS example_error
FROM dead_letters FINAL
WHERE received_at >= now64(6, 'UTC') - toIntervalDay({days:UInt32})
GROUP BY stage, reason, source_topic
ORDER BY letters DESC, stage, reason
