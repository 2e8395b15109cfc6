"""Shared pytest configuration: fixtures of the local services come from tests/plugins."""

pytest_plugins = ["tests.plugins.clickhouse"]
