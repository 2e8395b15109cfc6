"""omnijourney sinks: ClickHouse schema, sink and saved queries."""
