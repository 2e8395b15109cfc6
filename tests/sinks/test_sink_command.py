"""`omnijourney sink` as an operator runs it: a process that copies and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omnijourney.settings import Settings, child_environment
from tests.plugins.clickhouse import free_port
from tests.sinks import story
from tests.sinks.support import (
    committed,
    counts,
    create_topics,
    isolated,
    lag,
    messages,
    prepare,
    produce,
)

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ROOT = Path(__file__).resolve().parents[2]


def test_sink_command_copies_and_stops_on_sigterm(
    kafka_bootstrap: str, clickhouse_settings: Settings
) -> None:
    settings = isolated(clickhouse_settings, health_port=free_port())
    conn = prepare(settings)
    records = [r for r in story.story() if r["record_type"] == "enriched_touchpoint"]
    asyncio.run(create_topics(settings))
    asyncio.run(produce(settings, messages(settings, records)))
    env = child_environment(settings)
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "omnijourney.cli", "sink"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while asyncio.run(lag(settings)) != 0:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the sink did not catch up"
            time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    assert "sink: stopped after" in out.decode()
    assert counts(conn, final=True)["touchpoints"] == 21
    assert all(metadata == "" for _, metadata in asyncio.run(committed(settings)).values())
    conn.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")
    conn.close()
