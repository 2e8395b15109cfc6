-- Journey paths: channel sequences (repeats collapsed), how often each occurs, and its conversion rate.
-- Superseded journeys are left out; a journey re-walked after a late touch or a merge counts once.
-- param closed_only UInt8 = 0: 1 leaves out journeys still open (their outcome is not known yet)
-- param limit UInt32 = 20: most paths listed
SELECT
    arrayStringConcat(channel_path, ' > ') AS path,
    count() AS journeys,
    countIf(status = 'converted') AS conversions,
    round(conversions / journeys, 4) AS conversion_rate,
    sumIf(ifNull(conversion_value, 0), status = 'converted') AS conversion_value
FROM journeys_current
WHERE NOT ({closed_only:UInt8} = 1 AND status = 'open')
GROUP BY path
ORDER BY journeys DESC, conversions DESC, path
LIMIT {limit:UInt32}
