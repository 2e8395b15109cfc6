"""A broker of a three-node cluster is SIGKILLed mid-stream and restarted later.

The whole pipeline runs on the cluster (replication 3, min.insync.replicas 2): the HTTP
collector, two workers of one group and the ClickHouse sink. A client sends an order-independent
stream through the collector (retrying a 503 after its Retry-After, as a real client does); the
broker coordinating the workers' group (it also leads about a third of every topic's partitions)
is killed once a third of the stream is sent and started again at two thirds (the client waits
for it there, so the last third meets the restarted broker). In the end every
accepted touchpoint is on journeys.touchpoints and in ClickHouse once, and the journeys, on the
topics and in ClickHouse, equal the pure core's over the same validated touchpoints.

In the default suite (about 90 s); alone: `pytest -m cluster tests/streams/test_broker_kill.py`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from omnijourney.local import kafka_cluster
from omnijourney.local.admin import end_offsets
from omnijourney.local.process import free_port
from omnijourney.settings import Settings, WriteKey, child_environment
from schemas.contracts import PUBLIC_TOPICS
from schemas.validation import decode_touchpoint
from sinks.clickhouse import client
from sinks.migrations import migrate
from streams.topics import VALID_TOPIC, raw_topic_names
from tests.pipeline_support import ROOT, Worker, collector_settings, read_from
from tests.plugins.kafka import local_cluster
from tests.streams.support import (
    CHANNELS,
    PATIENCE,
    core_final_view,
    customer_names,
    differences,
    final_view,
    miscounted_journeys,
    people_events,
    repeats_differing,
    wait_caught_up,
)

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow, pytest.mark.cluster]

SECRET = "omnichannel-sender-secret-0123456789"
BATCH = 20  # events per request
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ------------------------------------------------------------------------------ processes


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url}: the process exited:\n{log.read_text()[-3000:]}")
        try:
            with _NO_PROXY.open(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not healthy within {timeout} s:\n{log.read_text()[-3000:]}")


@contextmanager
def _command(name: str, settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`omnijourney <name>` as a child process with exactly these settings (TERM at the end)."""
    env = {**child_environment(settings), "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "omnijourney.cli", name],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------------- sender


@dataclass
class Sender:
    """A client of the collector: batches in order, each retried after a 503 until accepted."""

    url: str
    batches: list[list[dict[str, Any]]]
    hold_at: int = -1
    """Before this batch, wait for `released` (the restart lands mid-stream, however slow)."""
    released: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    """Batches accepted so far."""
    accepted_first_time: int = 0
    answered_503: int = 0
    accepted_on_retry: int = 0
    accepted_ids: list[str] = field(default_factory=list)
    error: BaseException | None = None

    def run(self) -> None:
        """Send every batch (in a thread); an answer other than 202 or 503 ends it."""
        try:
            for index, batch in enumerate(self.batches):
                if index == self.hold_at and not self.released.wait(timeout=300):
                    raise AssertionError("the broker was not restarted within 300 s")
                self._send(batch)
                self.sent += 1
                time.sleep(0.1)
        except BaseException as exc:
            self.error = exc

    def _send(self, batch: list[dict[str, Any]]) -> None:
        body = orjson.dumps({"batch": batch})
        headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
        retried = False
        while True:
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with _NO_PROXY.open(request, timeout=120) as response:
                    answer = json.loads(response.read())
                    status = response.status
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise AssertionError(f"collector answered {exc.code}: {exc.read()!r}") from exc
                self.answered_503 += 1
                retried = True
                time.sleep(float(exc.headers["Retry-After"]))
                continue
            assert status == 202, (status, answer)
            assert answer["accepted"] == len(batch), answer
            self.accepted_ids += [event["event_id"] for event in batch]
            if retried:
                self.accepted_on_retry += 1
            else:
                self.accepted_first_time += 1
            return

    def figures(self) -> dict[str, int]:
        """The counts the test reports."""
        return {
            "requests": len(self.batches),
            "accepted_first_time": self.accepted_first_time,
            "answered_503": self.answered_503,
            "accepted_on_retry": self.accepted_on_retry,
            "events": len(self.accepted_ids),
        }


# -------------------------------------------------------------------------------- helpers


async def _coordinator(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return int(await admin.find_coordinator(group))
    finally:
        await admin.close()


def _everything(bootstrap: str, topics: list[str]) -> list[Any]:
    ends = asyncio.run(end_offsets(bootstrap, topics))
    return asyncio.run(read_from(bootstrap, dict.fromkeys(ends, 0)))


_TOUCH_COLUMNS = ("customer_id", "session_id", "journey_id", "position", "late", "previous_channel")
_JOURNEY_COLUMNS = (
    "customer_id", "status", "final", "first_event_id", "last_event_id", "touch_count",
    "session_ids", "channel_path", "switch_count", "conversion_event_id",
)  # fmt: skip


def _plain(value: Any) -> Any:
    """A record's value as ClickHouse stores it (None in a String column is '')."""
    return "" if value is None else value


def _clickhouse_view(conn: Client) -> dict[tuple[str, str], dict[str, Any]]:
    """touchpoints_current and journeys_current, customers named by their earliest event id."""
    touches = conn.query(f"SELECT event_id, {', '.join(_TOUCH_COLUMNS)} FROM touchpoints_current")
    journeys = conn.query(f"SELECT journey_id, {', '.join(_JOURNEY_COLUMNS)} FROM journeys_current")
    view: dict[tuple[str, str], dict[str, Any]] = {}
    for row in touches.named_results():
        view[("touch", row.pop("event_id"))] = row
    for row in journeys.named_results():
        view[("journey", row.pop("journey_id"))] = row
    names = customer_names({k[1]: d["customer_id"] for k, d in view.items() if k[0] == "touch"})
    for data in view.values():
        data["customer_id"] = names.get(data["customer_id"], data["customer_id"])
    return view


def _expected_rows(baseline: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], Any]:
    columns = {"touch": _TOUCH_COLUMNS, "journey": _JOURNEY_COLUMNS}
    return {
        key: {column: _plain(data[column]) for column in columns[key[0]]}
        for key, data in baseline.items()
    }


# ---------------------------------------------------------------------------------- test


def test_a_broker_killed_mid_stream_loses_and_doubles_nothing(
    kafka_settings: Settings, clickhouse_settings: Settings, tmp_path: Path
) -> None:
    run = uuid.uuid4().int % 10**6
    events = people_events(run)
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    group = f"omnijourney-broker-kill-{run}"
    database = f"broker_kill_{run}"
    first_port = kafka_settings.kafka.port + 100  # next to the run's own ports, checked free

    with local_cluster(kafka_settings, tmp_path / "cluster", first_port=first_port) as cluster:
        bootstrap = cluster.kafka.bootstrap
        keys = {"omnichannel": WriteKey(secret=SecretStr(SECRET), channels=CHANNELS)}
        settings = collector_settings(
            cluster, bootstrap, port=free_port(), write_keys=keys, retry_after_s=1
        )
        settings = settings.model_copy(
            update={
                "clickhouse": clickhouse_settings.clickhouse.model_copy(
                    update={"database": database}
                ),
                "sink": settings.sink.model_copy(
                    update={"group_id": f"sink-{run}", "health_port": 0}
                ),
            }
        )
        collector_url = f"http://127.0.0.1:{settings.collector.port}"
        worker_env = {
            "OMNIJOURNEY_WORKER__COMMIT_INTERVAL_S": "1.0",
            "OMNIJOURNEY_WORKER__LOG_LEVEL": "info",  # the logs say where a partition stalls
            **PATIENCE,
        }
        internal = [f"{group}.identifiers", f"{group}.customers"]
        migrate(settings)
        conn = client(settings, autogenerate_session_id=False)
        workers: list[Worker] = []
        sender = Sender(f"{collector_url}/v1/touchpoints", batches, hold_at=2 * len(batches) // 3)
        started = time.monotonic()
        try:
            with _command("collector", settings, tmp_path / "collector.log") as collector:
                _wait_http(f"{collector_url}/health", collector, tmp_path / "collector.log", 120)
                for name in ("first", "second"):
                    workers.append(Worker(bootstrap, tmp_path / name, group_id=group, **worker_env))
                for worker in workers:
                    worker.wait_healthy()
                with _command("sink", settings, tmp_path / "sink.log"):
                    victim = asyncio.run(_coordinator(bootstrap, group))
                    thread = threading.Thread(target=sender.run, name="sender")
                    thread.start()
                    while thread.is_alive() and sender.sent < len(batches) // 3:
                        time.sleep(0.1)
                    kafka_cluster.kill_node(cluster, victim)
                    killed_at = sender.sent
                    while thread.is_alive() and sender.sent < sender.hold_at:
                        time.sleep(0.1)
                    kafka_cluster.start_node(cluster, victim)
                    restarted_at = sender.sent
                    sender.released.set()  # the last third goes to the cluster with it back
                    thread.join()
                    assert sender.error is None, sender.error
                    assert killed_at < len(batches), "the stream ended before the kill"
                    topics = [*raw_topic_names(), VALID_TOPIC, *internal]
                    wait_caught_up(bootstrap, group, topics, timeout=300)
                    sink_topics = list(settings.sink.topics)
                    wait_caught_up(bootstrap, settings.sink.group_id, sink_topics, timeout=300)
            figures = {
                **sender.figures(),
                "victim": victim,
                "killed_after_batches": killed_at,
                "restarted_after_batches": restarted_at,
                "seconds": round(time.monotonic() - started),
            }
            print("broker kill:", json.dumps(figures))
            (tmp_path / "figures.json").write_text(json.dumps(figures))

            # The collector accepted every event, at once or after a 503 and a retry.
            assert sender.accepted_first_time + sender.accepted_on_retry == len(batches)
            accepted = Counter(sender.accepted_ids)
            assert accepted == Counter(event["event_id"] for event in events)

            consumed = _everything(bootstrap, [*PUBLIC_TOPICS, VALID_TOPIC])
            public = [c for c in consumed if c.topic in PUBLIC_TOPICS]
            valid = [decode_touchpoint(c.value) for c in consumed if c.topic == VALID_TOPIC]
            live = [orjson.loads(c.value) for c in public]

            # Every repeat on the public topics is recognizable (same key and version, same bytes).
            assert repeats_differing([(c.key, c.topic, c.value) for c in public]) == []

            # No touchpoint lost: every accepted event is on journeys.touchpoints.
            final = final_view(live)
            assert {k[1] for k in final if k[0] == "touch"} == set(accepted)
            # None counted twice: the same journeys as the undisturbed core.
            baseline = core_final_view(valid)
            assert differences(final, baseline) == []
            assert miscounted_journeys(final) == {}

            # ClickHouse: each accepted touchpoint once, and exactly the core's current rows.
            doubled = conn.command(
                "SELECT count() FROM (SELECT event_id, version FROM touchpoints FINAL "
                "GROUP BY event_id, version HAVING count() > 1)"
            )
            assert int(doubled) == 0
            in_clickhouse = _clickhouse_view(conn)
            current = conn.query("SELECT event_id FROM touchpoints_current").result_columns
            assert Counter(current[0] if current else []) == accepted
            expected = _expected_rows(baseline)
            assert differences(in_clickhouse, expected) == []
        finally:
            for worker in workers:
                if worker.process.poll() is None:
                    worker.stop()
            conn.command(f"DROP DATABASE IF EXISTS `{database}`")
            conn.close()
