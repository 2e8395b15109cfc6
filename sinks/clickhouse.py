"""clickhouse-connect clients of the configured ClickHouse (embedded or real: same code)."""

from __future__ import annotations

from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from omnijourney.settings import Settings


def client(settings: Settings, **options: Any) -> Client:
    """A clickhouse-connect client for settings.clickhouse; options go to get_client."""
    ch = settings.clickhouse
    options.setdefault("database", ch.database)
    return clickhouse_connect.get_client(
        host=ch.client_host,
        port=ch.port,
        username=ch.username,
        password=ch.password.get_secret_value(),
        secure=ch.secure,
        **options,
    )
