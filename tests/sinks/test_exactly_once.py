"""Exactly once into ClickHouse: a sink killed between insert and commit, and a ClickHouse
that is down for a minute, both end with every row present and none doubled."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from omnijourney.local import clickhouse
from omnijourney.settings import Settings, child_environment
from sinks.batches import parse_marker
from sinks.clickhouse import client
from sinks.sink import Sink
from tests.plugins.clickhouse import free_port
from tests.sinks.support import (
    committed,
    counts,
    create_topics,
    doubled,
    isolated,
    messages,
    on_instance,
    prepare,
    produce,
    unique_touches,
    wait_committed,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ROOT = Path(__file__).resolve().parents[2]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_sink_killed_between_insert_and_commit_leaves_no_duplicate(
    kafka_bootstrap: str, clickhouse_settings: Settings
) -> None:
    # big batches of a few seconds: the killed batch holds many rows
    settings = isolated(clickhouse_settings, flush_interval_s=2.0, batch_rows=100_000)
    conn = prepare(settings)
    total = 600
    try:
        asyncio.run(create_topics(settings))
        asyncio.run(produce(settings, messages(settings, unique_touches(total))))

        env = child_environment(settings)
        env["PYTHONPATH"] = str(ROOT)
        crashed = subprocess.run(
            [sys.executable, "-m", "tests.sinks.crashing_sink"],
            env=env,
            cwd=ROOT,
            timeout=180,
            capture_output=True,
            check=False,
        )
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]

        # the killed batch is in ClickHouse, its offsets are not committed: only the marker
        inserted = counts(conn)["touchpoints"]
        assert 2 <= inserted <= total
        markers = {
            tp: parse_marker(metadata)
            for tp, (_, metadata) in asyncio.run(committed(settings)).items()
            if parse_marker(metadata) is not None
        }
        assert markers, "no pending batch was left behind by the killed sink"

        async def restart() -> Sink:
            sink = Sink(settings)
            stop = asyncio.Event()
            task = asyncio.create_task(sink.run(stop))
            try:
                await wait_committed(settings, 120, "the restarted sink to commit everything")
            finally:
                stop.set()
                await asyncio.wait_for(task, 60)
            return sink

        sink = asyncio.run(restart())
        assert sink.stats.replays >= 1
        assert counts(conn)["touchpoints"] == total  # without FINAL: every insert shows
        assert counts(conn, final=True)["touchpoints"] == total
        assert doubled(conn) == {}
        assert all(
            parse_marker(metadata) is None
            for _, metadata in asyncio.run(committed(settings)).values()
        )
    finally:
        conn.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")
        conn.close()


def _health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_clickhouse_down_for_a_minute_loses_nothing(
    kafka_bootstrap: str, clickhouse_instance: Callable[..., Settings]
) -> None:
    instance = clickhouse_instance(name="outage")
    clickhouse.start(instance)
    bound = 50
    health_port = free_port()
    settings = on_instance(
        isolated(
            instance,
            batch_rows=20,
            max_buffered_rows=bound,
            retry_max_s=2.0,
            health_port=health_port,
        ),
        instance,
    )
    prepare(settings).close()
    before, during = 100, 400

    async def scenario() -> Sink:
        await create_topics(settings)
        sink = Sink(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        try:
            await produce(settings, messages(settings, unique_touches(before)))
            await wait_for(lambda: sink.stats.records == before and sink.buffers.held() == (0, 0),
                           60, "the first records in ClickHouse")  # fmt: skip
            status, body = await asyncio.to_thread(_health, health_port)
            assert (status, body["status"], body["records"]) == (200, "ok", before)

            await asyncio.to_thread(clickhouse.stop, instance)
            await produce(settings, messages(settings, unique_touches(during, start=before)))
            held_max = 0
            for _ in range(60):  # one minute without ClickHouse
                await asyncio.sleep(1)
                held_max = max(held_max, sink.buffers.held()[0])
            assert sink.stats.paused, "consumption should pause at the memory bound"
            assert sink.stats.insert_failures > 0
            assert 0 < held_max <= bound
            status, body = await asyncio.to_thread(_health, health_port)
            assert (status, body["status"], body["clickhouse_ok"]) == (503, "degraded", False)

            await asyncio.to_thread(clickhouse.start, instance)
            again = client(settings, autogenerate_session_id=False)
            for table in ("touchpoints",):  # merges do not survive a restart: stop them again
                again.command(f"SYSTEM STOP MERGES {table}")
            again.close()
            await wait_committed(settings, 180, "the sink to catch up after the outage")
            return sink
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    sink = asyncio.run(scenario())
    assert sink.stats.pauses >= 1 and not sink.stats.paused
    conn = client(settings, autogenerate_session_id=False)
    try:
        assert counts(conn, final=True)["touchpoints"] == before + during
        assert counts(conn)["touchpoints"] == before + during
        assert doubled(conn) == {}
    finally:
        conn.close()
