-- Channel attribution of conversions: first touch, last touch, linear and time decay, per channel.
-- A converted journey's touches are those before its conversion (the converting touch itself only when
-- nothing came before it); credits of one conversion add up to 1, value credits to its value.
-- param half_life_days Float64 = 7: time decay: a touch this many days before the conversion counts half
WITH
    conversions AS
    (
        SELECT journey_id, conversion_event_id, assumeNotNull(converted_at) AS converted_at, toFloat64(ifNull(conversion_value, 0)) AS value
        FROM journeys_current
        WHERE status = 'converted'
    ),
    journey_touches AS
    (
        SELECT
            journey_id,
            arraySort(t -> (t.2, t.3), groupArray((channel, occurred_at, event_id))) AS touches
        FROM touchpoints_current
        WHERE journey_id IN (SELECT journey_id FROM conversions) AND position > 0
        GROUP BY journey_id
    ),
    leads AS
    (
        SELECT
            c.value AS value,
            arrayFilter(t -> (t.2, t.3) < (c.converted_at, c.conversion_event_id), j.touches) AS before,
            if(empty(before), arrayFilter(t -> t.3 = c.conversion_event_id, j.touches), before) AS lead,
            arrayMap(
                t -> pow(2, -dateDiff('second', t.2, c.converted_at) / ({half_life_days:Float64} * 86400)),
                lead
            ) AS weights
        FROM conversions AS c
        INNER JOIN journey_touches AS j ON j.journey_id = c.journey_id
        WHERE notEmpty(lead)
    ),
    credits AS
    (
        SELECT
            value,
            arrayJoin(arrayConcat(
                [('first_touch', lead[1].1, 1.0), ('last_touch', lead[-1].1, 1.0)],
                arrayMap(t -> ('linear', t.1, 1.0 / length(lead)), lead),
                arrayMap((t, w) -> ('time_decay', t.1, w / arraySum(weights)), lead, weights)
            )) AS credit
        FROM leads
    )
SELECT
    credit.2 AS channel,
    round(sumIf(credit.3, credit.1 = 'first_touch'), 4) AS first_touch,
    round(sumIf(credit.3, credit.1 = 'last_touch'), 4) AS last_touch,
    round(sumIf(credit.3, credit.1 = 'linear'), 4) AS linear,
    round(sumIf(credit.3, credit.1 = 'time_decay'), 4) AS time_decay,
    round(sumIf(credit.3 * value, credit.1 = 'first_touch'), 2) AS value_first_touch,
    round(sumIf(credit.3 * value, credit.1 = 'last_touch'), 2) AS value_last_touch,
    round(sumIf(credit.3 * value, credit.1 = 'linear'), 2) AS value_linear,
    round(sumIf(credit.3 * value, credit.1 = 'time_decay'), 2) AS value_time_decay
FROM credits
GROUP BY channel
ORDER BY linear DESC, channel
