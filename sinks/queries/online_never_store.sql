-- Segment members: customers active on web or app in the last `days` days up to `as_of` who never bought in a store.
-- param days UInt32 = 30: length of the period that ends at as_of
-- param as_of String = '': end of the period (UTC, e.g. 2026-03-31 or 2026-03-31T12:00:00Z); empty means now
-- param limit UInt32 = 1000: most customers listed
WITH
    if({as_of:String} = '', now64(6, 'UTC'), parseDateTime64BestEffort({as_of:String}, 6, 'UTC')) AS period_end,
    period_end - toIntervalDay({days:UInt32}) AS period_start
SELECT customer_id, online_touches, last_online_at, purchases, purchase_value
FROM
(
    SELECT
        customer_id,
        countIf(channel IN ('web', 'app') AND occurred_at > period_start) AS online_touches,
        maxIf(occurred_at, channel IN ('web', 'app')) AS last_online_at,
        countIf(type = 'purchase') AS purchases,
        sumIf(ifNull(value, 0), type = 'purchase') AS purchase_value,
        countIf(channel = 'pos' AND type = 'purchase') AS store_purchases
    FROM touchpoints_current
    WHERE occurred_at <= period_end
    GROUP BY customer_id
)
WHERE online_touches > 0 AND store_purchases = 0
ORDER BY last_online_at DESC, customer_id
LIMIT {limit:UInt32}
