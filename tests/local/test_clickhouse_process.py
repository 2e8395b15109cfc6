"""Lifecycle of the embedded server process: start, stop, restart, ports, auth, other processes."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from pydantic import SecretStr

from omnijourney.exceptions import ConfigurationError, PortInUse
from omnijourney.local import clickhouse
from omnijourney.local.process import port_accepts
from omnijourney.settings import Settings, child_environment
from sinks.clickhouse import client
from tests.plugins.clickhouse import free_port, http, instance_settings

pytestmark = pytest.mark.clickhouse

REPO = Path(__file__).resolve().parents[2]


def test_restart_keeps_the_data(clickhouse_instance: Callable[..., Settings]) -> None:
    settings = clickhouse_instance()
    assert clickhouse.status(settings) == "clickhouse: not running"
    assert clickhouse.start(settings).startswith("clickhouse: started")
    assert clickhouse.start(settings).startswith("clickhouse: already running")
    assert "answering" in clickhouse.status(settings)
    ch = client(settings)
    ch.command("CREATE TABLE kept (id UInt32, s String) ENGINE = MergeTree ORDER BY id")
    ch.insert("kept", [[i, f"v{i}"] for i in range(1000)])
    ch.close()
    assert clickhouse.stop(settings) == "clickhouse: stopped"
    assert clickhouse.stop(settings) == "clickhouse: not running"
    assert not clickhouse.ping(settings.clickhouse)
    clickhouse.start(settings)
    ch = client(settings)
    assert ch.command("SELECT count(), sum(id), max(s) FROM kept") == ["1000", "499500", "v999"]
    ch.close()


def test_stop_lets_a_running_insert_finish(clickhouse_instance: Callable[..., Settings]) -> None:
    settings = clickhouse_instance()
    clickhouse.start(settings)
    ch = client(settings)
    ch.command("CREATE TABLE late (id UInt64) ENGINE = MergeTree ORDER BY id")
    first_sent = threading.Event()
    outcome: dict[str, Any] = {}

    def body() -> Iterator[bytes]:
        yield b"".join(b"%d\n" % i for i in range(50_000))
        first_sent.set()
        # Send the rest only once the server has begun stopping (it no longer accepts).
        deadline = time.monotonic() + 60
        while port_accepts("127.0.0.1", settings.clickhouse.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield b"".join(b"%d\n" % i for i in range(50_000, 100_000))

    def insert() -> None:
        try:
            outcome["rows"] = ch.raw_insert("late", ["id"], body(), fmt="TSV").written_rows
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=insert)
    thread.start()
    assert first_sent.wait(timeout=60)
    assert clickhouse.stop(settings) == "clickhouse: stopped"
    thread.join(timeout=60)
    assert outcome == {"rows": 100_000}
    ch.close()
    clickhouse.start(settings)
    ch = client(settings)
    assert ch.command("SELECT count() FROM late") == 100_000
    ch.close()


def test_port_held_by_another_program(clickhouse_instance: Callable[..., Settings]) -> None:
    settings = clickhouse_instance()
    with socket.socket() as other:
        other.bind(("127.0.0.1", settings.clickhouse.port))
        other.listen()
        with pytest.raises(PortInUse) as caught:
            clickhouse.start(settings)
        assert str(settings.clickhouse.port) in str(caught.value)
        assert "\n" not in str(caught.value)
        # stop only ever stops our own process: the other program keeps its port
        assert clickhouse.stop(settings) == "clickhouse: not running"
        assert socket.create_connection(("127.0.0.1", settings.clickhouse.port), timeout=2)


def test_non_loopback_without_password_is_refused(tmp_path: Path) -> None:
    settings = instance_settings(tmp_path)
    exposed = settings.model_copy(
        update={"clickhouse": settings.clickhouse.model_copy(update={"host": "0.0.0.0"})}
    )
    with pytest.raises(ConfigurationError, match="password"):
        clickhouse.serve(exposed)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A separate server with a password and a 1 MiB body limit."""
    base = instance_settings(tmp_path_factory.mktemp("guarded"), password="s3cret-pw")
    ch = base.clickhouse.model_copy(update={"max_body_bytes": 1 << 20})
    settings = base.model_copy(update={"clickhouse": ch})
    clickhouse.start(settings)
    yield settings
    clickhouse.stop(settings)


def test_right_password_is_accepted(guarded: Settings) -> None:
    ch = client(guarded)
    assert ch.command("SELECT 1") == 1
    ch.close()


def test_wrong_password_is_authentication_failed(guarded: Settings) -> None:
    wrong = guarded.model_copy(
        update={"clickhouse": guarded.clickhouse.model_copy(update={"password": SecretStr("no")})}
    )
    with pytest.raises(DatabaseError) as caught:
        client(wrong)
    assert caught.value.code == 516 and caught.value.name == "AUTHENTICATION_FAILED"
    assert "Authentication failed" in str(caught.value)


@pytest.mark.parametrize(
    ("params", "headers", "ok"),
    [
        ({}, {}, False),
        ({"user": "default", "password": "s3cret-pw"}, {}, True),
        ({"user": "default", "password": "bad"}, {}, False),
        ({}, {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "s3cret-pw"}, True),
        ({}, {"X-ClickHouse-User": "intruder", "X-ClickHouse-Key": "s3cret-pw"}, False),
        ({}, {"Authorization": "Basic " + base64.b64encode(b"default:s3cret-pw").decode()}, True),
    ],
)
def test_every_credential_channel(
    guarded: Settings, params: dict[str, str], headers: dict[str, str], ok: bool
) -> None:
    status, answer_headers, body = http(guarded, {**params, "query": "SELECT 7"}, headers=headers)
    if ok:
        assert (status, body) == (200, b"7\n")
    else:
        assert (status, answer_headers["X-ClickHouse-Exception-Code"]) == (403, "516")
        assert b"(AUTHENTICATION_FAILED)" in body


def test_body_limit(guarded: Settings) -> None:
    headers = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "s3cret-pw"}
    status, answer_headers, _ = http(guarded, {}, b"SELECT 1 --" + b"x" * (2 << 20), headers)
    assert (status, answer_headers["X-ClickHouse-Exception-Code"]) == (413, "229")
    status, _, body = http(guarded, {}, b"SELECT 1 --" + b"x" * 1000, headers)
    assert (status, body) == (200, b"1\n")


SCRIPT = textwrap.dedent(
    """
    import array, sys
    from omnijourney.settings import load_settings
    from sinks.clickhouse import client

    database, table = sys.argv[1], sys.argv[2]
    ch = client(load_settings(), database=database)
    ch.command(f"CREATE TABLE {table} (id UInt64, v Float64) ENGINE = MergeTree ORDER BY id")
    total = 1_000_000
    for start in range(0, total, 250_000):
        ids = array.array("Q", range(start, start + 250_000))
        values = array.array("d", (i * 0.5 for i in range(start, start + 250_000)))
        ch.insert(table, [ids, values], column_oriented=True)
    print(ch.command(f"SELECT count(), uniqExact(id) FROM {table}"))
    """
)


@pytest.mark.slow
def test_another_process_inserts_a_million_rows(
    clickhouse_settings: Settings, clickhouse_database: str
) -> None:
    env = child_environment(clickhouse_settings)
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, clickhouse_database, "million"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['1000000', '1000000']"
    ch = client(clickhouse_settings, database=clickhouse_database)
    assert ch.command("SELECT count(), sum(v) FROM million") == ["1000000", "249999750000"]
    ch.close()


def test_free_port_helper_gives_a_bindable_port() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
