-- Research online, purchase offline: share of store (pos) purchases that the same customer prepared with web or app activity in the days before.
-- For each store purchase, the last web or app touch of the customer strictly before it is looked up (ASOF JOIN).
-- param days UInt32 = 7: how many days before the store purchase online activity counts
WITH
    store AS
    (
        SELECT customer_id, event_id, occurred_at, ifNull(value, 0) AS value
        FROM touchpoints_current
        WHERE channel = 'pos' AND type = 'purchase'
    ),
    online AS
    (
        SELECT customer_id, occurred_at AS online_at, channel AS online_channel
        FROM touchpoints_current
        WHERE channel IN ('web', 'app')
    ),
    matched AS
    (
        SELECT
            s.event_id AS event_id,
            s.value AS value,
            o.online_channel AS online_channel,
            dateDiff('second', o.online_at, s.occurred_at) AS lead_s,
            o.online_channel != '' AND lead_s <= {days:UInt32} * 86400 AS researched
        FROM store AS s
        ASOF LEFT JOIN online AS o ON s.customer_id = o.customer_id AND o.online_at < s.occurred_at
    )
SELECT
    count() AS store_purchases,
    countIf(researched) AS researched_online,
    round(researched_online / nullIf(store_purchases, 0), 4) AS share,
    countIf(researched AND online_channel = 'web') AS last_seen_on_web,
    countIf(researched AND online_channel = 'app') AS last_seen_on_app,
    sumIf(value, researched) AS researched_value,
    sum(value) AS store_value,
    round(if(researched_online > 0, quantileExactInclusiveIf(0.5)(lead_s, researched) / 3600, NULL), 2)
        AS median_hours_online_to_store
FROM matched
