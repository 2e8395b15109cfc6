"""pytest plugin: the embedded ClickHouse server, started once per run and shared by all tests."""

from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from omnijourney.local import clickhouse
from omnijourney.settings import Settings, load_settings
from sinks.clickhouse import client

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(
    settings: Settings,
    params: dict[str, str],
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP request to the server: status, headers and body."""
    url = f"{settings.clickhouse.url}/?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with _NO_PROXY.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def instance_settings(data_dir: Path, password: str = "") -> Settings:
    """Settings of a separate embedded server: its own data dir and a free port."""
    base = load_settings()
    ch = base.clickhouse.model_copy(
        update={
            "port": free_port(),
            "password": SecretStr(password),
            "store_dir": None,
            "embedded": True,
        }
    )
    return base.model_copy(update={"data_dir": data_dir, "clickhouse": ch})


@pytest.fixture(scope="session")
def clickhouse_settings() -> Iterator[Settings]:
    """Settings of the embedded server every clickhouse test talks to (started if needed)."""
    settings = load_settings()
    if not settings.clickhouse.embedded:
        yield settings  # a real ClickHouse server is configured: nothing to start
        return
    already_up = clickhouse.process(settings).pid() is not None
    clickhouse.start(settings)
    try:
        yield settings
    finally:
        if not already_up:
            clickhouse.stop(settings)


@pytest.fixture(scope="session")
def clickhouse_database(clickhouse_settings: Settings) -> Iterator[str]:
    """A database of this test run, dropped at its end."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = client(clickhouse_settings, database="default")
    admin.command(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture(scope="session")
def clickhouse_client(clickhouse_settings: Settings, clickhouse_database: str) -> Iterator[Client]:
    """A clickhouse-connect client on the run's database."""
    connection = client(clickhouse_settings, database=clickhouse_database)
    yield connection
    connection.close()


@pytest.fixture
def clickhouse_instance(
    tmp_path: Path,
) -> Iterator[Callable[..., Settings]]:
    """Factory of separate embedded servers (own data dir and port), stopped after the test."""
    started: list[Settings] = []

    def make(password: str = "", name: str = "instance") -> Settings:
        settings = instance_settings(tmp_path / name, password)
        started.append(settings)
        return settings

    yield make
    for settings in started:
        with contextlib.suppress(Exception):
            clickhouse.stop(settings)
