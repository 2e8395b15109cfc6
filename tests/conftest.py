"""Shared pytest setup: the plugins that start the real local services once per run."""

pytest_plugins = ["tests.plugins.kafka", "tests.plugins.clickhouse"]
