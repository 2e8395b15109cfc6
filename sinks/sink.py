"""The ClickHouse sink: a Kafka consumer group copying the public topics into ClickHouse.

A plain aiokafka consumer group (no Faust: the sink keeps no state but its offsets, and it
needs control over exactly when offsets are committed). Per partition, records are batched by
count and age (`sinks.batches`), inserted with deduplication tokens (`sinks.writer`), and the
offsets committed only once ClickHouse has the rows. ClickHouse down: inserts are retried
with back-off, consumption pauses while too much waits in memory, nothing is committed, so
nothing is lost. The same code runs against a ClickHouse server or the embedded one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from omnijourney.exceptions import PortInUse, ServiceError
from omnijourney.settings import Settings
from schemas.limits import MAX_EVENT_TIME, MIN_EVENT_TIME
from schemas.pii import PiiHasher
from sinks.batches import Batch, Buffers, parse_marker, pending_marker
from sinks.rows import message_rows
from sinks.writer import Writer

log = logging.getLogger(__name__)

_POLL_MS: Final = 100
_FETCH_RECORDS: Final = 5_000
_DRAIN_S: Final = 10.0
"""On stop, how long buffered batches may take to reach ClickHouse before we leave them."""


@dataclass
class SinkHooks:
    """Points where tests step in (never set in production)."""

    after_insert: Callable[[Batch], None] | None = None
    """Called once a batch's rows are in ClickHouse, before its offsets are committed."""
    before_assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None = None
    """Awaited when partitions are assigned, before their committed offsets are read."""


@dataclass
class SinkStats:
    """What the sink did so far (served on /health)."""

    records: int = 0
    dead_letters: int = 0
    replays: int = 0
    """Pending batches found at assignment and rebuilt (a predecessor died mid-batch)."""
    batches: int = 0
    rows_sent: int = 0
    """Rows sent in inserts (a repeated insert that ClickHouse dropped counts too)."""
    insert_failures: int = 0
    commit_failures: int = 0
    pauses: int = 0
    paused: bool = False
    clickhouse_ok: bool = True
    last_error: str = ""
    last_commit_at: str = ""


def _received_at(record: ConsumerRecord[Any, Any]) -> datetime:
    """The Kafka timestamp of a record (or now, when it is not a plausible time)."""
    now = datetime.now(UTC)
    if record.timestamp is None or record.timestamp < 0:
        return now
    moment = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    return moment if MIN_EVENT_TIME <= moment < MAX_EVENT_TIME else now


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps the sink's buffers in step with the partitions it owns."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.sink.buffers.revoke((tp.topic, tp.partition))
        self.sink.stats.paused = False  # a new assignment starts unpaused

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.sink.assigned(assigned)
        except Exception as exc:
            # aiokafka only logs a listener's error; the sink must stop instead of consuming
            # partitions it cannot commit exactly once
            self.sink.failure = exc


class Sink:
    """Copies the public topics into ClickHouse, exactly once per row."""

    def __init__(self, settings: Settings, *, hooks: SinkHooks | None = None) -> None:
        self.settings = settings
        cfg = settings.sink
        self.buffers = Buffers(cfg.batch_rows, cfg.flush_interval_s)
        self.writer = Writer(settings)
        self.hooks = hooks or SinkHooks()
        self.stats = SinkStats()
        # Dead letters of the sink are redacted with a key of its own: it never needs the edge's
        # PII key, and a clear email in a broken record becomes an unlinkable hash.
        self.hasher = PiiHasher(secrets.token_bytes(32), settings.privacy.default_phone_region)
        self.partitions: set[TopicPartition] = set()
        self.ready = asyncio.Event()
        """Set once the sink owns partitions (tests wait for it before producing)."""
        self._wake = asyncio.Event()
        self._give_up_at: float | None = None
        self._draining = False
        self._consumer: AIOKafkaConsumer | None = None
        self._assigning: set[TopicPartition] = set()
        """Partitions held paused until their buffers exist."""
        self._admin: AIOKafkaAdminClient | None = None
        self.failure: Exception | None = None
        """Set when the sink cannot go on (raised from run)."""

    # ------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then insert what is buffered (briefly) and leave."""
        cfg, kafka = self.settings.sink, self.settings.kafka
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            group_id=cfg.group_id,
            client_id=f"omnijourney-sink-{socket.gethostname()}-{os.getpid()}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=_POLL_MS,
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        self._consumer, self._admin = consumer, admin
        health = await self._serve_health()
        try:
            try:
                await admin.start()
                consumer.subscribe(topics=list(cfg.topics), listener=_Rebalance(self))
                await consumer.start()
            except KafkaError as exc:
                raise ServiceError(f"sink: cannot reach Kafka at {kafka.bootstrap}: {exc}") from exc
            await self._consume(consumer, stop)
        finally:
            await consumer.stop()
            await admin.close()
            if health is not None:
                await health.cleanup()
            await asyncio.to_thread(self.writer.close)

    async def _consume(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        cfg = self.settings.sink
        flusher = asyncio.create_task(self._flush_loop(), name="sink-flusher")
        try:
            while not stop.is_set() and not flusher.done():
                # never fetch more than the memory bound leaves room for
                room = max(1, cfg.max_buffered_rows - self.buffers.held()[0])
                fetched = await consumer.getmany(
                    timeout_ms=_POLL_MS, max_records=min(_FETCH_RECORDS, room)
                )
                now = time.monotonic()
                for tp, records in fetched.items():
                    for record in records:
                        self._ingest(tp, record, now)
                self._backpressure(consumer)
                if fetched:
                    self._wake.set()
                if self.failure is not None:
                    raise self.failure
            if flusher.done():
                flusher.result()  # the flusher failed: raise its error
            await self._drain(flusher)
        finally:
            flusher.cancel()
            with contextlib.suppress(BaseException):
                await flusher

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        """New partitions: start each at its committed offset, replaying a pending batch."""
        self.partitions = set(assigned)
        consumer = self._consumer
        assert consumer is not None  # the listener runs inside run(), which set it
        # aiokafka fetches new partitions from their commits while the markers are read below
        # (seconds when the coordinator moved); a record returned before its partition has a
        # buffer would be dropped and the next batch would commit past it. Hold them until then.
        self._assigning = set(assigned)
        if assigned:
            consumer.pause(*assigned)
        if self.hooks.before_assigned is not None:
            await self.hooks.before_assigned(assigned)
        committed = await self._committed(assigned)
        owned = consumer.assignment()
        for tp in assigned & owned:
            offset, metadata = committed.get(tp, (-1, ""))
            replay = parse_marker(metadata) if offset >= 0 else None
            self.buffers.assign((tp.topic, tp.partition), replay)
            if offset >= 0:
                consumer.seek(tp, offset)  # exactly where the marker read belongs
            if replay is not None:
                self.stats.replays += 1
                log.info("sink: %s-%d replays batch %d..%d", tp.topic, tp.partition, offset, replay)
        self._assigning = set()
        if not self.stats.paused:
            consumer.resume(*(assigned & owned))
        if assigned:
            self.ready.set()

    async def _committed(self, partitions: set[TopicPartition]) -> dict[TopicPartition, Any]:
        """Committed offsets with their metadata (the pending-batch markers)."""
        if not partitions or self._admin is None:
            return {}
        delay = self.settings.sink.retry_initial_s
        for attempt in range(8):
            try:
                found = await self._admin.list_consumer_group_offsets(
                    self.settings.sink.group_id, partitions=list(partitions)
                )
                return {tp: (om.offset, om.metadata) for tp, om in found.items()}
            except KafkaError as exc:
                log.warning("sink: reading committed offsets failed (%d): %s", attempt + 1, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.sink.retry_max_s)
        # Without the markers a pending batch could be rebuilt differently and doubled.
        raise KafkaError("cannot read the committed offsets of the sink's partitions")

    # ------------------------------------------------------------ consuming

    def _ingest(self, tp: TopicPartition, record: ConsumerRecord[Any, Any], now: float) -> None:
        value = record.value if isinstance(record.value, bytes | None) else bytes(record.value)
        rows, refused = message_rows(
            tp.topic,
            tp.partition,
            record.offset,
            value,
            received_at=_received_at(record),
            hasher=self.hasher,
        )
        if self.buffers.add((tp.topic, tp.partition), record.offset, rows, len(value or b""), now):
            self.stats.records += 1
            self.stats.dead_letters += refused

    def _backpressure(self, consumer: AIOKafkaConsumer) -> None:
        """Pause every partition while too much waits for ClickHouse; resume at half."""
        cfg = self.settings.sink
        records, size = self.buffers.held()
        if not self.stats.paused and (
            records >= cfg.max_buffered_rows or size >= cfg.max_buffered_bytes
        ):
            consumer.pause(*consumer.assignment())
            self.stats.paused = True
            self.stats.pauses += 1
            log.warning("sink: %d records (%d bytes) wait for ClickHouse: paused", records, size)
        elif self.stats.paused and (
            records <= cfg.max_buffered_rows // 2 and size <= cfg.max_buffered_bytes // 2
        ):
            consumer.resume(*(consumer.assignment() - self._assigning))
            self.stats.paused = False
            log.info("sink: resumed")

    # ------------------------------------------------------------ flushing

    async def _flush_loop(self) -> None:
        while True:
            self._wake.clear()
            batch = self.buffers.take(time.monotonic(), everything=self._draining)
            if batch is not None:
                await self._flush(batch)
                continue
            if self._draining:
                return
            due = self.buffers.next_due()
            timeout = 0.5 if due is None else max(0.0, due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _drain(self, flusher: asyncio.Task[None]) -> None:
        """On stop: insert and commit what is buffered, within the drain deadline.

        What does not make it stays uncommitted and is read again by the next owner.
        """
        self._draining = True
        self._give_up_at = time.monotonic() + _DRAIN_S
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(flusher), _DRAIN_S + 5.0)

    async def _flush(self, batch: Batch) -> bool:
        """Insert a batch and commit its offsets; False when it was left for a later owner."""
        tp = TopicPartition(batch.topic, batch.partition)
        try:
            if not await self._commit(tp, batch, batch.first_offset, batch.last_offset):
                return False
            written = await self._insert(batch)
            if written is None:
                return False
            if self.hooks.after_insert is not None:
                self.hooks.after_insert(batch)
            if not await self._commit(tp, batch, batch.last_offset + 1, None):
                return False
            self.stats.batches += 1
            self.stats.rows_sent += written
            self.stats.last_commit_at = datetime.now(UTC).isoformat()
            return True
        finally:
            self.buffers.finished(batch)

    def _giving_up(self) -> bool:
        return self._give_up_at is not None and time.monotonic() > self._give_up_at

    async def _backoff(self, delay: float) -> float:
        await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))  # noqa: S311 - jitter only
        return min(delay * 2, self.settings.sink.retry_max_s)

    async def _commit(
        self, tp: TopicPartition, batch: Batch, offset: int, pending: int | None
    ) -> bool:
        """Commit an offset (with the pending-batch marker when `pending` is given)."""
        metadata = "" if pending is None else pending_marker(pending)
        delay = self.settings.sink.retry_initial_s
        assert self._consumer is not None
        while not batch.abandoned:
            try:
                await self._consumer.commit({tp: OffsetAndMetadata(offset, metadata)})
                return True
            except (CommitFailedError, IllegalStateError) as exc:
                # The partition went to another member: it replays from the last commit.
                log.info("sink: %s-%d no longer ours: %s", tp.topic, tp.partition, exc)
                batch.abandoned = True
            except KafkaError as exc:
                self.stats.commit_failures += 1
                log.warning("sink: commit on %s-%d failed: %s", tp.topic, tp.partition, exc)
                if self._giving_up():
                    return False
                delay = await self._backoff(delay)
        return False

    async def _insert(self, batch: Batch) -> int | None:
        """Insert with retries until ClickHouse has the rows (None: abandoned or stopping)."""
        delay = self.settings.sink.retry_initial_s
        attempt = 0
        while not batch.abandoned:
            try:
                written = await asyncio.to_thread(self.writer.write, batch)
                self.stats.clickhouse_ok = True
                return written
            except Exception as exc:
                attempt += 1
                self.stats.insert_failures += 1
                self.stats.clickhouse_ok = False
                self.stats.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.warning(
                    "sink: insert of %s-%d [%d..%d] failed (attempt %d), retrying in %.1fs: %s",
                    batch.topic,
                    batch.partition,
                    batch.first_offset,
                    batch.last_offset,
                    attempt,
                    delay,
                    self.stats.last_error,
                )
                if self._giving_up():
                    return None
                delay = await self._backoff(delay)
        return None

    # ------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        """The sink's state as /health serves it."""
        records, size = self.buffers.held()
        state = "ok" if self.stats.clickhouse_ok else "degraded"
        return {
            "status": state if self.partitions else "starting",
            "group_id": self.settings.sink.group_id,
            "partitions": len(self.partitions),
            "held_records": records,
            "held_bytes": size,
            **asdict(self.stats),
        }

    async def _health(self, request: web.Request) -> web.Response:
        body = self.health()
        return web.json_response(body, status=200 if body["status"] != "degraded" else 503)

    async def _serve_health(self) -> web.AppRunner | None:
        cfg = self.settings.sink
        if cfg.health_port == 0:
            return None
        app = web.Application()
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, cfg.health_host, cfg.health_port).start()
        except OSError as exc:
            await runner.cleanup()
            raise PortInUse(
                f"sink health endpoint: cannot listen on {cfg.health_host}:{cfg.health_port} "
                f"({exc.strerror}); set OMNIJOURNEY_SINK__HEALTH_PORT (0 disables it)"
            ) from exc
        return runner


async def run_sink(settings: Settings, stop: asyncio.Event | None = None) -> SinkStats:
    """Run a sink until `stop` is set (or forever); its final statistics."""
    sink = Sink(settings)
    await sink.run(stop or asyncio.Event())
    return sink.stats
