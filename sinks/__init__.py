"""omnijourney sinks: ClickHouse schema, sink and saved queries.

* `ddl/` and `migrations` - the versioned schema, `omnijourney clickhouse migrate`.
* `rows` - table rows of public records and dead letters (pure); `batches` - per-partition
  batches and the pending-batch markers that make replays exact (pure).
* `writer` - deduplicated inserts and alias flattening; `sink` - the consumer group.
* `queries/` and `reports` - saved queries, `omnijourney report` and `query`.
* `clickhouse` - the clickhouse-connect client of the settings.
"""
