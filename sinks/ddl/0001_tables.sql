-- Tables of everything the pipeline publishes. Targets ClickHouse 24.8 LTS and newer (and chdb).
-- Versioned rows (touchpoints, sessions, journeys) are ReplacingMergeTree(version): the highest
-- version of a key is the current one (query with FINAL, or through the *_current views).
-- non_replicated_deduplication_window lets a retried insert with the same
-- insert_deduplication_token be dropped on a single server, as replicated tables do.

CREATE TABLE IF NOT EXISTS touchpoints
(
    customer_id String,
    occurred_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    event_id String,
    channel LowCardinality(String),
    type LowCardinality(String),
    received_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    session_id String COMMENT 'empty for late and identity-only touches',
    journey_id String COMMENT 'empty when the touch belongs to no known journey',
    position UInt32 COMMENT '1-based place in the journey; 0 for late and identity-only touches',
    previous_channel LowCardinality(String),
    late Bool,
    value Nullable(Decimal(18, 4)),
    currency LowCardinality(String),
    identity_kinds Array(LowCardinality(String)),
    identity_values Array(String),
    consent_analytics Bool,
    consent_personalization Bool,
    consent_marketing Bool,
    properties Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    version UInt64,
    schema_version UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX event_idx event_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX journey_idx journey_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (customer_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS sessions
(
    session_id String,
    customer_id String,
    journey_id String,
    channel LowCardinality(String),
    started_at DateTime64(6, 'UTC') CODEC(ZSTD(1)),
    ended_at DateTime64(6, 'UTC') CODEC(ZSTD(1)),
    touch_count UInt32,
    first_event_id String,
    last_event_id String,
    supersedes Array(String),
    superseded_by String COMMENT 'set on the last version of a session that no longer exists',
    version UInt64,
    schema_version UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX customer_idx customer_id TYPE bloom_filter(0.01) GRANULARITY 4
)
-- Keyed by session id alone: after a merge the session is re-published under the surviving
-- customer with a higher version, and that version must replace the one under the old id.
-- (Rows are not in time order, so timestamps get ZSTD without Delta.) started_at is the
-- time of the touch that names the session, the same in every version: safe to partition by.
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY session_id
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS journeys
(
    journey_id String,
    customer_id String,
    status LowCardinality(String),
    final Bool,
    started_at DateTime64(6, 'UTC') CODEC(ZSTD(1)),
    ended_at DateTime64(6, 'UTC') CODEC(ZSTD(1)),
    first_channel LowCardinality(String),
    last_channel LowCardinality(String),
    first_event_id String,
    last_event_id String,
    touch_count UInt32,
    session_ids Array(String),
    channel_path Array(LowCardinality(String)),
    switch_count UInt32,
    switch_from Array(LowCardinality(String)),
    switch_to Array(LowCardinality(String)),
    switch_at Array(DateTime64(6, 'UTC')),
    switch_event_ids Array(String),
    conversion_event_id String,
    conversion_type LowCardinality(String),
    conversion_channel LowCardinality(String),
    converted_at Nullable(DateTime64(6, 'UTC')),
    conversion_value Nullable(Decimal(18, 4)),
    conversion_currency LowCardinality(String),
    supersedes Array(String),
    superseded_by String,
    version UInt64,
    schema_version UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX customer_idx customer_id TYPE bloom_filter(0.01) GRANULARITY 4
)
-- keyed by journey id alone, for the same reason as sessions
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY journey_id
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS identity_links
(
    customer_id String,
    identifier_kind LowCardinality(String),
    identifier_value String,
    event_id String,
    schema_version UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX identifier_idx identifier_value TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, identifier_kind, identifier_value)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS identity_merges
(
    alias_id String,
    survivor_id String,
    identifier_kind LowCardinality(String),
    identifier_value String,
    rule LowCardinality(String),
    event_id String,
    schema_version UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
ORDER BY (alias_id, survivor_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS identity_rejections
(
    customer_id String,
    identifier_kind LowCardinality(String),
    identifier_value String,
    rule LowCardinality(String),
    event_id String,
    other_customer_id String,
    schema_version UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, event_id, identifier_kind, identifier_value, rule)
SETTINGS non_replicated_deduplication_window = 1000;

-- alias -> survivor, kept flat by the sink: each merge A -> Z also re-points every alias whose
-- survivor was A (and resolves Z if Z is itself an alias), so one join resolves any old id.
-- Survivors are always the older (smaller) id, so the smallest survivor of an alias is its
-- root: customer_alias_map takes min(survivor_id) and is right even while a chain is open.
CREATE TABLE IF NOT EXISTS customer_aliases
(
    alias_id String,
    survivor_id String,
    direct Bool COMMENT 'true: from a merge record; false: re-pointed through another alias',
    event_id String COMMENT 'the touch that is the evidence of the merge',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
ORDER BY (alias_id, survivor_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS dead_letters
(
    received_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    dead_letter_id String,
    stage LowCardinality(String),
    reason LowCardinality(String),
    error String,
    error_locs Array(String),
    error_msgs Array(String),
    error_reasons Array(LowCardinality(String)),
    source_topic LowCardinality(String),
    source_partition Int32 COMMENT '-1 when unknown',
    source_offset Int64 COMMENT '-1 when unknown',
    channel LowCardinality(String),
    event_id String,
    original_b64 String CODEC(ZSTD(3)),
    original_size UInt32,
    original_sha256 String,
    original_truncated Bool,
    original_redacted Bool,
    version UInt8,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (stage, reason, received_at, dead_letter_id)
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
