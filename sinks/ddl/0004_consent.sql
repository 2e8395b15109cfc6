-- Consent (decision 0016). Journeys carry the customer's latest known consent when the version
-- was made, so analysts segment journeys (and customers, by their latest journey version) on
-- marketing consent. Rows written before this migration read the defaults: analytics only.
ALTER TABLE journeys ADD COLUMN IF NOT EXISTS consent_analytics Bool DEFAULT true;
ALTER TABLE journeys ADD COLUMN IF NOT EXISTS consent_personalization Bool DEFAULT false;
ALTER TABLE journeys ADD COLUMN IF NOT EXISTS consent_marketing Bool DEFAULT false;

-- Touchpoints without analytics consent: counted in anonymous aggregates only. No identifier,
-- no customer, no session or journey: nothing here links to a person. Retention as touchpoints.
CREATE TABLE IF NOT EXISTS anonymous_touchpoints
(
    occurred_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    event_id String,
    channel LowCardinality(String),
    type LowCardinality(String),
    received_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    value Nullable(Decimal(18, 4)),
    currency LowCardinality(String),
    consent_personalization Bool,
    consent_marketing Bool,
    properties Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    schema_version UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (channel, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
