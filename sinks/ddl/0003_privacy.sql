-- Receipts of completed erasures (schemas.privacy.ErasureReceipt): the audit trail of data
-- subject requests. No personal data: the request id, the stores reached, counts and times.
-- Kept without TTL: it is the evidence that an erasure was done. One row per request (the
-- stores as parallel arrays); storing a receipt twice keeps one.

CREATE TABLE IF NOT EXISTS privacy_receipts
(
    request_id String,
    started_at DateTime64(6, 'UTC'),
    completed_at DateTime64(6, 'UTC'),
    customer_ids_count UInt64 COMMENT 'the customer and every alias merged into it',
    stores Array(LowCardinality(String)),
    store_keys_removed Array(UInt64),
    store_rows_removed Array(UInt64),
    store_completed_at Array(DateTime64(6, 'UTC')),
    schema_version UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY request_id
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per store a receipt lists: what a data protection officer reads.
CREATE OR REPLACE VIEW privacy_receipt_stores AS
SELECT
    request_id,
    started_at,
    completed_at,
    customer_ids_count,
    store,
    keys_removed,
    rows_removed,
    store_done_at
FROM (SELECT * FROM privacy_receipts FINAL)
ARRAY JOIN
    stores AS store,
    store_keys_removed AS keys_removed,
    store_rows_removed AS rows_removed,
    store_completed_at AS store_done_at;
