"""Local services of the embedded defaults: a real Kafka broker and an embedded ClickHouse."""
