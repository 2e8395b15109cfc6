-- Customer segments: how many customers fall in each, over the last `days` days up to `as_of`.
-- online_never_store: active on web or app in the period, never bought in a store.
-- store_only: bought in a store, never seen on web or app.
-- researched_online_bought_in_store: seen on web or app and bought in a store (ever).
-- omnichannel_buyers: bought in two or more channels. browsers_no_purchase: active online in the period, never bought.
-- param days UInt32 = 30: length of the period that ends at as_of
-- param as_of String = '': end of the period (UTC, e.g. 2026-03-31 or 2026-03-31T12:00:00Z); empty means now
WITH
    if({as_of:String} = '', now64(6, 'UTC'), parseDateTime64BestEffort({as_of:String}, 6, 'UTC')) AS period_end,
    period_end - toIntervalDay({days:UInt32}) AS period_start,
    flags AS
    (
        SELECT
            customer_id,
            countIf(channel IN ('web', 'app') AND occurred_at > period_start AND occurred_at <= period_end) > 0
                AS online_active,
            countIf(channel IN ('web', 'app')) > 0 AS ever_online,
            countIf(channel = 'pos' AND type = 'purchase') > 0 AS store_buyer,
            countIf(type = 'purchase') > 0 AS buyer,
            uniqExactIf(channel, type = 'purchase') >= 2 AS omnichannel_buyer
        FROM touchpoints_current
        WHERE occurred_at <= period_end
        GROUP BY customer_id
    )
SELECT
    s.1 AS segment,
    s.2 AS customers,
    round(s.2 / nullIf(total, 0), 4) AS share_of_customers
FROM
(
    SELECT
        count() AS total,
        countIf(online_active AND NOT store_buyer) AS online_never_store,
        countIf(store_buyer AND NOT ever_online) AS store_only,
        countIf(ever_online AND store_buyer) AS researched_online_bought_in_store,
        countIf(omnichannel_buyer) AS omnichannel_buyers,
        countIf(online_active AND NOT buyer) AS browsers_no_purchase
    FROM flags
)
ARRAY JOIN [
    ('online_never_store', online_never_store),
    ('store_only', store_only),
    ('researched_online_bought_in_store', researched_online_bought_in_store),
    ('omnichannel_buyers', omnichannel_buyers),
    ('browsers_no_purchase', browsers_no_purchase)
] AS s
