"""Load run: simulated touchpoints at increasing rates into a running worker until it breaks.

    PYTHONPATH=. python -m bench.load [--rates 100,250,500,1000,2000,4000,8000] [--seconds 20]
                                      [--p99 2.0] [--backlog 5.0]

For each rate the simulator's records (valid events, the duplicates flaky clients re-send and
0.5% malformed ones, as `omnijourney simulate` makes them, encoded beforehand) are produced to
the raw topics `touchpoints.<channel>` at that rate for `--seconds`, while a consumer reads
`journeys.touchpoints`. Per step:

* latency: from the raw broker timestamp (LogAppendTime, the record's `received_at`) to the
  first enriched record of the event on journeys.touchpoints (that record's timestamp, i.e.
  when the worker produced it), p50 / p99 / max over the valid events of the step; an event
  not enriched within the drain time counts as infinitely late;
* lag: the worker group's committed lag on the raw topics when sending stops, and the
  backlog: valid events sent but not yet enriched then, in seconds of input at that rate.

A step passes when the producer reached 90% of the rate, p99 <= `--p99` seconds and the
backlog <= `--backlog` seconds; the run stops at the first failure. The sustainable rate is
the highest passing step. The worker is a subprocess (`omnijourney worker`) with a fresh app id
and consumer group that starts at the current end of the raw topics; it shares the machine
with this process (producer and consumer) and the broker. The local Kafka broker is started
when it is not running (and stopped again at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench._machine import describe
from omnijourney.local import kafka
from omnijourney.local.admin import topic_partitions
from omnijourney.local.process import port_accepts
from omnijourney.settings import Settings, child_environment, load_settings
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.delivery import Stamper, kafka_record
from omnijourney.simulator.generator import Emission, simulate
from schemas.emitter import Emitter
from schemas.keystore import hasher_from_settings
from streams.topics import VALID_TOPIC, raw_topic_names

OUTPUT = "journeys.touchpoints"
ROOT = Path(__file__).resolve().parents[1]


@dataclass(slots=True)
class Step:
    """What one rate step sent and saw."""

    rate: int
    sent: int = 0
    seconds: float = 0.0
    valid: dict[str, None] = field(default_factory=dict)
    """Event ids of the valid events sent (insertion-ordered)."""
    latency: dict[str, float] = field(default_factory=dict)
    """event id -> seconds from the raw broker timestamp to the first enriched record."""
    seen: dict[str, float] = field(default_factory=dict)
    """event id -> seconds from the raw broker timestamp until this process read it."""
    lag: int = 0
    backlog: int = 0

    @property
    def achieved(self) -> float:
        """Records per second the producer reached."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, share: float, *, seen: bool = False) -> float:
        """Latency percentile over every valid event (not enriched: infinite)."""
        values = sorted((self.seen if seen else self.latency).values())
        missing = len(self.valid) - len(values)
        values += [math.inf] * missing
        if not values:
            return math.inf
        return values[min(len(values) - 1, math.ceil(share * len(values)) - 1)]


def records(config: SimulationConfig, settings: Settings, count: int) -> Iterator[Any]:
    """The first `count` Kafka records of a simulation (encoded as the simulator sends them)."""
    emitter, stamper = Emitter(hasher_from_settings(settings)), Stamper("none")
    made = 0
    for item in simulate(config, hasher_from_settings(settings)):
        if not isinstance(item, Emission):
            continue
        record = kafka_record(item, emitter, stamper, "touchpoints")
        event_id = item.event["event_id"] if item.kind == "event" and item.event else None
        yield record, event_id
        made += 1
        if made >= count:
            return


def prepare(settings: Settings, rate: int, seconds: float, seed: int) -> list[Any]:
    """Records for one step: a simulation big enough for rate x seconds (its own seed)."""
    count = int(rate * seconds)
    customers = max(200, count // 12)  # ~20 records per person and month: the first weeks
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    config = SimulationConfig(
        customers=customers, days=30, start=start - timedelta(days=40), seed=seed
    )
    return list(records(config, settings, count))


class Worker:
    """`omnijourney worker` in a subprocess with a fresh app id (consumer group)."""

    def __init__(self, settings: Settings, app_id: str, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/health"
        log_dir = settings.path("bench")
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"{app_id}.log"
        env = {
            **child_environment(settings),
            "PYTHONPATH": str(ROOT),
            "OMNIJOURNEY_WORKER__APP_ID": app_id,
            "OMNIJOURNEY_WORKER__PORT": str(port),
            "OMNIJOURNEY_WORKER__LOG_LEVEL": "warning",
        }
        env.pop("OMNIJOURNEY_WORKER", None)  # the JSON section would override the two above
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "omnijourney.cli", "worker"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def healthy(self) -> bool:
        """Whether /health answers 200."""
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float = 180.0) -> None:
        """Wait for /health, or fail with the log's tail."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"worker not healthy (exit {self.process.poll()}):\n{tail}")
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a minute."""
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    """Every partition of those of the topics that exist."""
    counts = await topic_partitions(bootstrap, topics)
    return [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]


async def commit_ends(bootstrap: str, group_id: str, topics: list[str]) -> None:
    """Start a new consumer group at the current end of the topics (ignore their history)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await _partitions(bootstrap, topics)
        if partitions:  # topics that do not exist yet hold no history
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            await consumer.commit(ends)
    finally:
        await consumer.stop()


async def group_lag(bootstrap: str, group_id: str, topics: list[str]) -> int:
    """End offsets minus the group's committed offsets, summed over the topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
        ends = await consumer.end_offsets(await _partitions(bootstrap, topics))
        return sum(
            max(0, end - (committed[tp].offset if tp in committed else 0))
            for tp, end in ends.items()
        )
    finally:
        await consumer.stop()
        await admin.close()


class Watcher:
    """Reads journeys.touchpoints from its current end; notes each event's first latency."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        self.step: Step | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Assign every partition of the output topic at its end and start reading."""
        await self.consumer.start()
        partitions = await _partitions(self.bootstrap, [OUTPUT])
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.consumer:
            step = self.step
            if step is None or message.value is None:
                continue
            data = orjson.loads(message.value)
            event_id = data.get("event_id")
            if event_id in step.valid and event_id not in step.latency:
                received = datetime.fromisoformat(data["received_at"].replace("Z", "+00:00"))
                step.latency[event_id] = message.timestamp / 1000 - received.timestamp()
                step.seen[event_id] = time.time() - received.timestamp()

    async def stop(self) -> None:
        """Stop reading."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()


async def run_step(
    bootstrap: str, producer: AIOKafkaProducer, watcher: Watcher, step: Step, batch: list[Any]
) -> None:
    """Produce the batch at the step's rate (paced per millisecond slice), record what was sent."""
    watcher.step = step
    started = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    for n, (record, event_id) in enumerate(batch):
        if event_id is not None:
            step.valid[event_id] = None
        pending.append(await producer.send(record.topic, record.value, key=record.key or None))
        due = started + (n + 1) / step.rate
        if (wait := due - time.monotonic()) > 0.002:
            await asyncio.sleep(wait)
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    step.sent = len(batch)
    step.seconds = time.monotonic() - started


async def drain(step: Step, timeout: float) -> None:
    """Wait until every valid event of the step was enriched (or the timeout)."""
    deadline = time.monotonic() + timeout
    while len(step.latency) < len(step.valid) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


def _fmt(seconds: float) -> str:
    return "inf" if math.isinf(seconds) else f"{seconds:.2f}"


async def main_async(args: argparse.Namespace, settings: Settings) -> list[tuple[Step, bool]]:
    """Start the worker, run the steps until one fails; every step with its verdict."""
    bootstrap = settings.kafka.bootstrap
    app_id = f"bench-load-{uuid.uuid4().hex[:8]}"
    topics = [*raw_topic_names(), VALID_TOPIC]
    await commit_ends(bootstrap, app_id, topics)
    port = _free_port()
    worker = Worker(settings, app_id, port)
    results: list[tuple[Step, bool]] = []
    try:
        await asyncio.to_thread(worker.wait_healthy)
        print(f"worker {app_id} healthy on port {port}; log {worker.log}")
        watcher = Watcher(bootstrap)
        await watcher.start()
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
        )
        await producer.start()
        try:
            for number, rate in enumerate(args.rates):
                batch = await asyncio.to_thread(
                    prepare, settings, rate, args.seconds, args.seed + number
                )
                step = Step(rate)
                await run_step(bootstrap, producer, watcher, step, batch)
                step.backlog = len(step.valid) - len(step.latency)
                step.lag = await group_lag(bootstrap, app_id, list(raw_topic_names()))
                await drain(step, timeout=max(30.0, 2 * args.seconds))
                ok = (
                    step.achieved >= 0.9 * rate
                    and step.percentile(0.99) <= args.p99
                    and step.backlog <= args.backlog * rate
                )
                results.append((step, ok))
                print(
                    f"  {rate:>6,}/s target: sent {step.sent:,} at {step.achieved:,.0f}/s, "
                    f"latency p50 {_fmt(step.percentile(0.5))} s, p99 "
                    f"{_fmt(step.percentile(0.99))} s, max {_fmt(step.percentile(1.0))} s "
                    f"(read here: p99 {_fmt(step.percentile(0.99, seen=True))} s); "
                    f"raw lag {step.lag:,}, backlog {step.backlog:,} "
                    f"({step.backlog / rate:.1f} s of input) -> {'ok' if ok else 'BROKEN'}",
                    flush=True,
                )
                if not ok:
                    break
                await drain(step, timeout=60)  # start the next step on an idle pipeline
        finally:
            await producer.stop()
            await watcher.stop()
    finally:
        await asyncio.to_thread(worker.stop)
    return results


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    """Parse the arguments, run the steps, print the sustainable rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        type=lambda text: [int(r) for r in text.split(",")],
        default=[100, 250, 500, 1000, 2000, 4000, 8000],
        help="records per second of each step (comma separated)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each step")
    parser.add_argument("--p99", type=float, default=2.0, help="p99 latency limit (s)")
    parser.add_argument(
        "--backlog", type=float, default=5.0, help="backlog limit (seconds of input)"
    )
    parser.add_argument("--seed", type=int, default=101)
    args = parser.parse_args()
    settings = load_settings()
    was_running = port_accepts(settings.kafka.host, settings.kafka.port)
    print(kafka.start(settings))
    try:
        results = asyncio.run(main_async(args, settings))
    finally:
        if not was_running:
            print(kafka.stop(settings))
    passed = [step for step, ok in results if ok]
    print(f"machine: {describe()}; load average {os.getloadavg()[0]:.1f}")
    if passed:
        best = passed[-1]
        print(
            f"sustainable rate: {best.rate:,} records/s (p99 {_fmt(best.percentile(0.99))} s, "
            f"p50 {_fmt(best.percentile(0.5))} s)"
        )
    else:
        print("sustainable rate: below the first step")
    if results and not results[-1][1]:
        step = results[-1][0]
        print(f"broke at {step.rate:,} records/s")
    latencies = ", ".join(_fmt(step.percentile(0.99)) for step, _ in results)
    print(f"p99 by step: {latencies} s")


if __name__ == "__main__":
    main()
