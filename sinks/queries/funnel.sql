-- Cross-channel funnel: product_view on the web -> add_to_cart (any channel) -> purchase (any channel).
-- Per customer, the best chain is counted: from a web product view, the first add_to_cart after it and
-- then the first purchase after that, both within window_days of the view (windowFunnel semantics),
-- with the time between steps of that chain.
-- param window_days UInt32 = 7: how long after the product view the later steps count
WITH
    per_customer AS
    (
        SELECT
            customer_id,
            arraySort(groupArrayIf(occurred_at, channel = 'web' AND type = 'product_view')) AS views,
            arraySort(groupArrayIf(occurred_at, type = 'add_to_cart')) AS carts,
            arraySort(groupArrayIf(occurred_at, type = 'purchase')) AS buys
        FROM touchpoints_current
        GROUP BY customer_id
        HAVING notEmpty(views)
    ),
    chains AS
    (
        SELECT
            customer_id,
            arrayMap(
                v -> (
                    v,
                    arrayFirstIndex(c -> c >= v AND c <= v + toIntervalDay({window_days:UInt32}), carts)
                ),
                views
            ) AS with_cart,
            arrayMap(
                vc -> (
                    vc.1,
                    if(vc.2 = 0, vc.1, carts[vc.2]),
                    vc.2 > 0,
                    if(
                        vc.2 = 0,
                        0,
                        arrayFirstIndex(
                            b -> b >= carts[vc.2] AND b <= vc.1 + toIntervalDay({window_days:UInt32}),
                            buys
                        )
                    )
                ),
                with_cart
            ) AS steps,
            -- best chain: most steps, then the earliest view
            arraySort(
                s -> (-(toInt8(s.3) + toInt8(s.4 > 0)), s.1),
                steps
            )[1] AS best
        FROM per_customer
    ),
    reached AS
    (
        SELECT
            customer_id,
            1 + toUInt8(best.3) + toUInt8(best.4 > 0) AS level,
            dateDiff('second', best.1, best.2) AS view_to_cart_s,
            if(best.4 > 0, dateDiff('second', best.2, buys[best.4]), 0) AS cart_to_buy_s
        FROM chains
        INNER JOIN per_customer USING customer_id
    ),
    totals AS
    (
        SELECT
            count() AS s1,
            countIf(level >= 2) AS s2,
            countIf(level >= 3) AS s3,
            if(s2 > 0, avgIf(view_to_cart_s, level >= 2) / 3600, NULL) AS avg12,
            if(s2 > 0, quantileExactInclusiveIf(0.5)(view_to_cart_s, level >= 2) / 3600, NULL) AS med12,
            if(s3 > 0, avgIf(cart_to_buy_s, level >= 3) / 3600, NULL) AS avg23,
            if(s3 > 0, quantileExactInclusiveIf(0.5)(cart_to_buy_s, level >= 3) / 3600, NULL) AS med23
        FROM reached
    )
SELECT
    f.1 AS step,
    f.2 AS name,
    f.3 AS customers,
    round(f.3 / nullIf(f.4, 0), 4) AS conversion_from_previous,
    round(f.3 / nullIf(s1, 0), 4) AS conversion_from_start,
    round(f.5, 2) AS avg_hours_from_previous,
    round(f.6, 2) AS median_hours_from_previous
FROM totals
ARRAY JOIN [
    (1, 'product_view (web)', s1, s1, CAST(NULL, 'Nullable(Float64)'), CAST(NULL, 'Nullable(Float64)')),
    (2, 'add_to_cart', s2, s1, toNullable(toFloat64(avg12)), toNullable(toFloat64(med12))),
    (3, 'purchase', s3, s2, toNullable(toFloat64(avg23)), toNullable(toFloat64(med23)))
] AS f
ORDER BY step
