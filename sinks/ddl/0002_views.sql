-- Views analysts start from: current versions only, every customer id resolved through the
-- aliases, so rows written under a customer id that was later merged count for the survivor.

-- alias -> its root survivor (survivors are older, smaller ids: the smallest is the root)
CREATE OR REPLACE VIEW customer_alias_map AS
SELECT alias_id, min(survivor_id) AS survivor_id
FROM customer_aliases
GROUP BY alias_id;

-- One row per touchpoint (its highest version), customer resolved.
CREATE OR REPLACE VIEW touchpoints_current AS
SELECT
    coalesce(nullIf(m.survivor_id, ''), t.customer_id) AS customer_id,
    t.customer_id AS recorded_customer_id,
    t.event_id AS event_id,
    t.channel AS channel,
    t.type AS type,
    t.occurred_at AS occurred_at,
    t.received_at AS received_at,
    t.session_id AS session_id,
    t.journey_id AS journey_id,
    t.position AS position,
    t.previous_channel AS previous_channel,
    t.late AS late,
    t.value AS value,
    t.currency AS currency,
    t.identity_kinds AS identity_kinds,
    t.identity_values AS identity_values,
    t.consent_analytics AS consent_analytics,
    t.consent_personalization AS consent_personalization,
    t.consent_marketing AS consent_marketing,
    t.properties AS properties,
    t.version AS version,
    t.ingested_at AS ingested_at
FROM
(
    -- a merge re-publishes a touch under the survivor (another sort key): keep the newest
    SELECT * FROM touchpoints ORDER BY version DESC LIMIT 1 BY event_id
) AS t
LEFT JOIN customer_alias_map AS m ON m.alias_id = t.customer_id;

-- Sessions as they are now (latest version, superseded ones left out), customer resolved.
CREATE OR REPLACE VIEW sessions_current AS
SELECT
    coalesce(nullIf(m.survivor_id, ''), s.customer_id) AS customer_id,
    s.customer_id AS recorded_customer_id,
    s.session_id AS session_id,
    s.journey_id AS journey_id,
    s.channel AS channel,
    s.started_at AS started_at,
    s.ended_at AS ended_at,
    s.touch_count AS touch_count,
    s.first_event_id AS first_event_id,
    s.last_event_id AS last_event_id,
    s.supersedes AS supersedes,
    s.version AS version
FROM (SELECT * FROM sessions FINAL) AS s
LEFT JOIN customer_alias_map AS m ON m.alias_id = s.customer_id
WHERE s.superseded_by = '';

-- Journeys as they are now (latest version, superseded ones left out), customer resolved.
CREATE OR REPLACE VIEW journeys_current AS
SELECT
    coalesce(nullIf(m.survivor_id, ''), j.customer_id) AS customer_id,
    j.customer_id AS recorded_customer_id,
    j.journey_id AS journey_id,
    j.status AS status,
    j.final AS final,
    j.started_at AS started_at,
    j.ended_at AS ended_at,
    j.first_channel AS first_channel,
    j.last_channel AS last_channel,
    j.first_event_id AS first_event_id,
    j.last_event_id AS last_event_id,
    j.touch_count AS touch_count,
    j.session_ids AS session_ids,
    j.channel_path AS channel_path,
    j.switch_count AS switch_count,
    j.switch_from AS switch_from,
    j.switch_to AS switch_to,
    j.switch_at AS switch_at,
    j.conversion_event_id AS conversion_event_id,
    j.conversion_type AS conversion_type,
    j.conversion_channel AS conversion_channel,
    j.converted_at AS converted_at,
    j.conversion_value AS conversion_value,
    j.conversion_currency AS conversion_currency,
    j.supersedes AS supersedes,
    j.version AS version
FROM (SELECT * FROM journeys FINAL) AS j
LEFT JOIN customer_alias_map AS m ON m.alias_id = j.customer_id
WHERE j.status != 'superseded';

-- Every identifier of every customer, linked under the customer or under one merged into it.
CREATE OR REPLACE VIEW customer_identifiers AS
SELECT
    resolved AS customer_id,
    identifier_kind,
    identifier_value,
    min(linked_at) AS first_linked_at
FROM
(
    SELECT
        coalesce(nullIf(m.survivor_id, ''), l.customer_id) AS resolved,
        l.identifier_kind AS identifier_kind,
        l.identifier_value AS identifier_value,
        l.ingested_at AS linked_at
    FROM identity_links AS l
    LEFT JOIN customer_alias_map AS m ON m.alias_id = l.customer_id
)
GROUP BY resolved, identifier_kind, identifier_value;

-- The single customer view: identifiers, merged ids, channels, first and last touch,
-- purchases and their value per channel (value maps assume one currency per customer; the
-- currencies column lists what was summed).
CREATE OR REPLACE VIEW single_customer_view AS
SELECT
    c.customer_id AS customer_id,
    ids.identifiers AS identifiers,
    al.aliases AS aliases,
    c.channels AS channels,
    c.first_touch_at AS first_touch_at,
    c.first_channel AS first_channel,
    c.last_touch_at AS last_touch_at,
    c.last_channel AS last_channel,
    c.touches AS touches,
    c.purchases AS purchases,
    c.purchase_value AS purchase_value,
    c.purchases_by_channel AS purchases_by_channel,
    c.value_by_channel AS value_by_channel,
    c.currencies AS currencies
FROM
(
    SELECT
        customer_id,
        arraySort(groupArray(channel)) AS channels,
        min(first_at) AS first_touch_at,
        argMin(channel, first_at) AS first_channel,
        max(last_at) AS last_touch_at,
        argMax(channel, last_at) AS last_channel,
        sum(channel_touches) AS touches,
        sum(channel_purchases) AS purchases,
        sum(channel_value) AS purchase_value,
        mapFromArrays(
            arrayFilter((ch, n) -> n > 0, groupArray(channel), groupArray(channel_purchases)),
            arrayFilter(n -> n > 0, groupArray(channel_purchases))
        ) AS purchases_by_channel,
        mapFromArrays(
            arrayFilter((ch, n) -> n > 0, groupArray(channel), groupArray(channel_purchases)),
            arrayFilter((v, n) -> n > 0, groupArray(channel_value), groupArray(channel_purchases))
        ) AS value_by_channel,
        arraySort(arrayDistinct(arrayFlatten(groupArray(channel_currencies)))) AS currencies
    FROM
    (
        SELECT
            customer_id,
            channel,
            min(occurred_at) AS first_at,
            max(occurred_at) AS last_at,
            count() AS channel_touches,
            countIf(type = 'purchase') AS channel_purchases,
            sumIf(ifNull(value, 0), type = 'purchase') AS channel_value,
            groupUniqArrayIf(currency, type = 'purchase' AND currency != '') AS channel_currencies
        FROM touchpoints_current
        GROUP BY customer_id, channel
    )
    GROUP BY customer_id
) AS c
LEFT JOIN
(
    -- unnamed (kind, value) pairs: ClickHouse 24.8 would name a tuple of columns after them
    SELECT
        customer_id,
        arraySort(
            groupArray(CAST((identifier_kind, identifier_value), 'Tuple(String, String)'))
        ) AS identifiers
    FROM customer_identifiers
    GROUP BY customer_id
) AS ids ON ids.customer_id = c.customer_id
LEFT JOIN
(
    SELECT survivor_id, arraySort(groupArray(alias_id)) AS aliases
    FROM customer_alias_map
    GROUP BY survivor_id
) AS al ON al.survivor_id = c.customer_id;

-- Channel sequences of journeys (repeats collapsed), how often each occurs and converts.
CREATE OR REPLACE VIEW journey_paths AS
SELECT
    arrayStringConcat(channel_path, ' > ') AS path,
    length(channel_path) AS channels,
    count() AS journeys,
    countIf(status = 'converted') AS conversions,
    countIf(status = 'open') AS still_open,
    round(conversions / journeys, 4) AS conversion_rate,
    sumIf(ifNull(conversion_value, 0), status = 'converted') AS conversion_value
FROM journeys_current
GROUP BY path, channels;
