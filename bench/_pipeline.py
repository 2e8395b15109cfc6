"""What the pipeline benchmarks share: simulated input, worker processes, watching the outputs.

Black box: touchpoints go in on the raw channel topics, the watcher reads the public topics
(and `touchpoints.valid`, to see when a worker starts consuming). Nothing inside the worker is
used, so the benchmarks keep working whatever the stages look like inside.

Times are broker timestamps in milliseconds: the raw topics stamp LogAppendTime (that is
`received_at`), the output topics carry whatever their timestamp type gives (CreateTime: the
worker's clock when it produced). On one machine both read the same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pstats
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from omnijourney.exceptions import PortInUse, ServiceError
from omnijourney.local import kafka
from omnijourney.local.admin import commit_offsets, declare_topics, end_offsets
from omnijourney.local.process import ensure_port_free, free_port
from omnijourney.local.worker_process import WorkerProcess
from omnijourney.settings import Settings
from omnijourney.simulator.command import default_start
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.delivery import Pacer, Stamper, kafka_record
from omnijourney.simulator.generator import Emission, simulate
from schemas.contracts import JOURNEYS_TOPIC, PUBLIC_TOPICS, TOUCHPOINTS_TOPIC
from schemas.emitter import Emitter
from schemas.pii import PiiHasher
from schemas.topics import TOPIC_PREFIX, VALID_TOPIC, Record
from streams.topics import pipeline_topics, raw_topic_names, stitching_topics

PII_KEY = "omnijourney-bench-pii-key-0123456789abcdef"
HASHER = PiiHasher(PII_KEY.encode(), "US")
LOG_APPEND_TIME = 1
SIM_DAYS = 7


@dataclass(frozen=True, slots=True)
class Input:
    """One touchpoint as its producer sends it, with its event id."""

    event_id: str
    record: Record


def simulated(n: int, seed: int, now: datetime) -> list[Input]:
    """The first n events of a seeded simulation of the last week (no copies, no garbage).

    About four customers per 13 events, as `omnijourney simulate` gives over a week, so the
    identity and journey state grows as it would in a shop of that size.
    """
    config = SimulationConfig(
        customers=max(100, n * 4 // 13),
        days=SIM_DAYS,
        start=default_start(SIM_DAYS, now),
        seed=seed,
        malformed_share=0.0,
        duplicate_share=0.0,
    )
    emitter, stamper = Emitter(HASHER), Stamper("none")  # event times exactly as simulated
    inputs: list[Input] = []
    for item in simulate(config, HASHER):
        if isinstance(item, Emission) and item.event is not None:
            record = kafka_record(item, emitter, stamper, TOPIC_PREFIX)
            inputs.append(Input(str(item.event["event_id"]), record))
            if len(inputs) == n:
                return inputs
    raise ServiceError(f"the simulation gave {len(inputs):,} events, fewer than {n:,}")


def mean_size(inputs: Sequence[Input]) -> int:
    """Mean value size in bytes."""
    return round(sum(len(item.record.value) for item in inputs) / max(1, len(inputs)))


async def prepare_topics(settings: Settings) -> None:
    """Create the raw, valid and public topics as the worker would (LogAppendTime on raw)."""
    public = [spec for spec in stitching_topics(settings) if spec.name in PUBLIC_TOPICS]
    await declare_topics(
        settings.kafka.bootstrap,
        [*pipeline_topics(settings), *public],
        replication_factor=settings.kafka.replication_factor,
        min_insync_replicas=settings.kafka.min_insync_replicas,
    )


async def input_ends(bootstrap: str) -> dict[TopicPartition, int]:
    """Where the worker's input topics end now."""
    return await end_offsets(bootstrap, [*raw_topic_names(), VALID_TOPIC])


async def output_ends(bootstrap: str) -> dict[TopicPartition, int]:
    """Where the watched output topics end now."""
    return await end_offsets(bootstrap, [VALID_TOPIC, TOUCHPOINTS_TOPIC, JOURNEYS_TOPIC])


async def produce(bootstrap: str, inputs: Sequence[Input], rate: float | None) -> dict[str, int]:
    """Send the inputs (at `rate` per second, or as fast as the broker acknowledges).

    Returns the broker's append time (ms) of each event id.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        pacer = Pacer(rate)
        futures = []
        for sent, item in enumerate(inputs):
            if (delay := pacer.delay(sent)) > 0.002:
                await asyncio.sleep(delay)
            topic, key, value = item.record
            futures.append(await producer.send(topic, value, key=key or None))
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    if any(meta.timestamp_type != LOG_APPEND_TIME for meta in metadata):
        raise ServiceError("raw topics must stamp LogAppendTime (they were created otherwise)")
    return {item.event_id: meta.timestamp for item, meta in zip(inputs, metadata, strict=True)}


@dataclass
class Seen:
    """When each expected event first appeared on each watched topic (broker ms)."""

    expected: frozenset[str]
    valid: dict[str, int] = field(default_factory=dict)
    enriched: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    timestamp_types: set[tuple[str, int]] = field(default_factory=set)
    records: int = 0

    def add(self, topic: str, value: bytes, timestamp: int, timestamp_type: int) -> None:
        """Note one output record."""
        self.records += 1
        self.timestamp_types.add((topic, timestamp_type))
        data = orjson.loads(value)
        if topic == JOURNEYS_TOPIC:
            event_id, table = data.get("last_event_id"), self.updated
        else:
            event_id = data.get("event_id")
            table = self.enriched if topic == TOUCHPOINTS_TOPIC else self.valid
        if event_id in self.expected and timestamp < table.get(event_id, timestamp + 1):
            table[event_id] = timestamp

    def done(self) -> bool:
        """Every expected event has its enriched touchpoint."""
        return len(self.enriched) == len(self.expected)

    def first_output(self, event_id: str) -> int:
        """The first journeys.touchpoints or journeys.updates record carrying the event."""
        updated = self.updated.get(event_id)
        enriched = self.enriched[event_id]
        return enriched if updated is None else min(enriched, updated)


async def watch(
    bootstrap: str,
    starts: dict[TopicPartition, int],
    seen: Seen,
    check: Callable[[], None],
    stall_s: float = 180.0,
) -> Seen:
    """Read the outputs from `starts` until every expected event is enriched.

    `check` raises when the workers are gone; ServiceError when no new expected event shows
    up for stall_s seconds.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        progress, last_change = -1, time.monotonic()
        while not seen.done():
            check()
            batches = await consumer.getmany(timeout_ms=500, max_records=5_000)
            for records in batches.values():
                for r in records:
                    seen.add(r.topic, r.value or b"{}", r.timestamp, r.timestamp_type)
            if len(seen.enriched) != progress:
                progress, last_change = len(seen.enriched), time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                raise ServiceError(
                    f"stalled: {len(seen.enriched):,} of {len(seen.expected):,} events enriched, "
                    f"nothing new for {stall_s:.0f} s"
                )
        return seen
    finally:
        await consumer.stop()


def produce_watched(
    workers: Workers, inputs: Sequence[Input], rate: float | None
) -> tuple[dict[str, int], Seen]:
    """Produce while watching the outputs until every input is enriched.

    Returns the broker append time (ms) of each event id and what the watcher saw.
    """
    bootstrap = workers.settings.kafka.bootstrap
    starts = asyncio.run(output_ends(bootstrap))
    seen = Seen(frozenset(item.event_id for item in inputs))

    async def both() -> dict[str, int]:
        watcher = asyncio.create_task(watch(bootstrap, starts, seen, workers.check))
        raw = await produce(bootstrap, inputs, rate)
        await watcher
        return raw

    return asyncio.run(both()), seen


@contextlib.contextmanager
def local_broker(settings: Settings) -> Iterator[None]:
    """The configured broker, started when none runs (and then stopped again afterwards)."""
    started_here = kafka.running_pid(settings) is None and not settings.kafka.bootstrap_servers
    print(kafka.start(settings))
    try:
        yield
    finally:
        if started_here:
            print(kafka.stop(settings))


@dataclass
class Workers:
    """Worker subprocesses of one consumer group (one app id), started for one measurement."""

    settings: Settings
    app_id: str
    base: Path
    profile: Path | None = None
    """Where the first worker writes its cProfile statistics, if it is profiled."""
    processes: list[WorkerProcess] = field(default_factory=list)

    def start(self, count: int) -> None:
        """Start `count` workers (the first on the configured port, others on free ones)."""
        env = {
            # The settings' level (info by default) is what a deployed worker runs with.
            "OMNIJOURNEY_WORKER__LOG_LEVEL": self.settings.worker.log_level,
            "OMNIJOURNEY_WORKER__STORE": self.settings.worker.store,
            "OMNIJOURNEY_WORKER__COMMIT_INTERVAL_S": str(self.settings.worker.commit_interval_s),
        }
        for _ in range(count):
            number = len(self.processes)
            port = self._port(first=number == 0)
            profiled = self.profile is not None and number == 0
            python_args = ("-m", "cProfile", "-o", str(self.profile)) if profiled else ()
            self.processes.append(
                WorkerProcess(
                    self.settings.kafka.bootstrap,
                    self.base / f"worker-{number}",
                    app_id=self.app_id,
                    port=port,
                    pii_key=PII_KEY,
                    env=env,
                    python_args=python_args,
                )
            )

    def _port(self, *, first: bool) -> int:
        """The configured web port for the first worker (while it is free), else a free one."""
        configured = self.settings.worker.port
        if first:
            try:
                ensure_port_free(self.settings.worker.host, configured, "worker")
            except PortInUse as exc:
                print(f"{exc}: using a free port")
            else:
                return configured
        return free_port()

    def check(self) -> None:
        """ServiceError when a worker has exited."""
        for process in self.processes:
            if process.process.poll() is not None:
                raise ServiceError(
                    f"worker {process.log} exited ({process.process.returncode}):\n"
                    f"{process.log_tail(1500)}"
                )

    def cpu_seconds(self) -> list[float]:
        """CPU time (user + system) each worker used so far, from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        seconds = []
        for process in self.processes:
            try:
                fields = Path(f"/proc/{process.process.pid}/stat").read_text().rsplit(")", 1)[1]
            except OSError:
                seconds.append(float("nan"))
                continue
            utime, stime = fields.split()[11:13]  # fields 14 and 15 of proc(5)
            seconds.append((int(utime) + int(stime)) / tick)
        return seconds

    def assigned(self) -> list[int | None]:
        """assigned_partitions of each worker's /health (None when it does not say)."""
        counts = []
        for process in self.processes:
            _, body = process.status()
            value = body.get("assigned_partitions")
            counts.append(value if isinstance(value, int) else None)
        return counts

    def wait_settled(self, timeout_s: float = 180.0) -> list[int | None]:
        """Wait until every worker is healthy and the assignment stopped moving (3 polls)."""
        deadline, last, same = time.monotonic() + timeout_s, None, 0
        while same < 3:
            if time.monotonic() > deadline:
                raise ServiceError(f"workers of {self.app_id} did not settle: {self.assigned()}")
            for process in self.processes:
                process.wait_healthy(max(1.0, deadline - time.monotonic()))
            counts = self.assigned()
            same = same + 1 if counts == last else 0
            last = counts
            time.sleep(1.0)
        return list(last or [])

    def stop(self) -> None:
        """Stop every worker (graceful, then KILL)."""
        for process in self.processes:
            process.stop()

    def failed_logs(self) -> str:
        """The end of each worker's log (printed when a measurement fails)."""
        return "\n".join(f"--- {p.log}\n{p.log_tail(1500)}" for p in self.processes)


@contextlib.contextmanager
def worker_group(settings: Settings, tag: str, *, profile: bool = False) -> Iterator[Workers]:
    """A fresh app id whose workers, data dirs and internal topics go away afterwards.

    With `profile`, the first worker runs under cProfile; its statistics file stays.
    """
    app_id = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    stats = settings.path("bench", f"{app_id}.prof") if profile else None
    workers = Workers(settings, app_id, settings.path("bench", app_id), profile=stats)
    ok = False
    try:
        yield workers
        ok = True
    finally:
        workers.stop()
        if not ok:
            print(workers.failed_logs())
        asyncio.run(_delete_topics(settings.kafka.bootstrap, prefix=app_id))
        shutil.rmtree(workers.base, ignore_errors=True)


async def start_group_at_end(bootstrap: str, app_id: str) -> dict[TopicPartition, int]:
    """Commit the input topics' current ends for the group; those offsets."""
    ends = await input_ends(bootstrap)
    await commit_offsets(bootstrap, app_id, ends)
    return ends


async def _delete_topics(bootstrap: str, *, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def _package(filename: str) -> str:
    """Where a profiled function lives: a site package, a stdlib module, or this repository."""
    if filename.startswith("~") or filename.startswith("<"):
        return "built-ins (C: sockets, orjson, selectors...)"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    for index, part in enumerate(parts):
        if part.startswith("python3.") and index + 1 < len(parts):
            return f"stdlib {Path(parts[index + 1]).stem}"
    root = Path(__file__).resolve().parents[1]
    path = Path(filename)
    return path.relative_to(root).parts[0] if path.is_relative_to(root) else filename


def print_profile(path: Path, lines: int = 25) -> None:
    """Where a profiled worker spent its own time: by package, then the top functions."""
    stats = pstats.Stats(str(path))
    by_package: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():
        label = _package(filename)
        by_package[label] = by_package.get(label, 0.0) + own
    total = sum(by_package.values())
    print(f"worker profile: {total:.1f} s of own time (cProfile inflates small calls)")
    for label, own in sorted(by_package.items(), key=lambda item: -item[1])[:12]:
        print(f"  {own / total:6.1%}  {label}")
    stats.sort_stats("tottime").print_stats(lines)
    print(f"(whole statistics: python -m pstats {path})")


def percentile(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of sorted values."""
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def span_s(first: Iterable[int], last: Iterable[int]) -> float:
    """Seconds from the earliest of `first` to the latest of `last` (ms timestamps)."""
    return (max(last) - min(first)) / 1000


def utc_now() -> datetime:
    """The wall clock, timezone-aware."""
    return datetime.now(UTC)
