"""Kafka delivery for the collector: a request is answered only once its records are committed.

Concurrent requests are group-committed: one transactional producer takes every request
waiting, produces their records in one Kafka transaction (acks=all, idempotent), commits,
and only then answers them. A transaction that fails or times out is never retried here:
its producer is discarded and the next one, created with the same transactional.id, fences
it, so the broker aborts whatever part reached it and read_committed consumers never see
half a request. The requests are answered 503 and their senders retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from omnijourney.exceptions import KafkaUnavailable, Overloaded, ServiceError, TransientError
from omnijourney.local.admin import TopicSpecLike, declare_topics
from schemas.topics import Record

log = logging.getLogger(__name__)

MAX_RECORDS_PER_TRANSACTION: Final = 5000
_MAX_BATCH_BYTES: Final = 256 * 1024
_BACKOFF_S: Final = (0.2, 0.5, 1.0, 2.0, 5.0)
_OUTAGES: Final = (KafkaError, OSError, TimeoutError, ServiceError, TransientError)

ProducerFactory = Callable[[], AIOKafkaProducer]


def _new_future() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # the sender may have hung up: mark the outcome as read so asyncio does not warn about it
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


@dataclass(slots=True)
class _Job:
    records: Sequence[Record]
    done: asyncio.Future[None] = field(default_factory=_new_future)


class Delivery:
    """Produces each request's records in a Kafka transaction and reports when committed."""

    def __init__(
        self,
        *,
        bootstrap: str,
        transactional_id: str,
        timeout_s: float,
        max_pending: int,
        topics: Sequence[TopicSpecLike] = (),
        replication_factor: int | None = None,
        min_insync_replicas: int | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._transactional_id = transactional_id
        self._timeout_s = timeout_s
        self._topics = tuple(topics)
        self._replication_factor = replication_factor
        self._min_insync_replicas = min_insync_replicas
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max_pending)
        self._producer: AIOKafkaProducer | None = None
        self._topics_declared = False
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._discarding: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: list[_Job] = []
        self._closing = False
        self.last_error = "not connected yet"

    @property
    def connected(self) -> bool:
        """True while a producer is connected and its last transaction did not fail."""
        return self._producer is not None and not self._disconnected.is_set()

    async def start(self) -> None:
        """Start connecting (in the background) and committing."""
        self._tasks = [
            asyncio.create_task(self._keep_connected(), name="collector-kafka-connect"),
            asyncio.create_task(self._commit_loop(), name="collector-kafka-commit"),
        ]

    async def stop(self) -> None:
        """Refuse new requests, let the waiting ones commit (bounded), close the producer."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout_s + 1):
                while self.connected and (self._inflight or not self._queue.empty()):
                    await asyncio.sleep(0.05)
        inflight = list(self._inflight)  # the commit loop forgets them when cancelled
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stopping = KafkaUnavailable("the collector is shutting down")
        _settle(inflight, stopping)
        self._fail_waiting(stopping)
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._close(producer)
        if self._discarding:
            await asyncio.wait(self._discarding)

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected; False after timeout_s."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not self.connected:
                    await asyncio.sleep(0.05)
        return self.connected

    async def deliver(self, records: Sequence[Record]) -> None:
        """Return once the records are committed; KafkaUnavailable or Overloaded if not."""
        if self._closing:
            raise KafkaUnavailable("the collector is shutting down")
        if not self.connected:
            raise KafkaUnavailable(f"Kafka is unreachable ({self.last_error})")
        job = _Job(records)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded("too many requests are waiting for Kafka") from None
        # shield: a sender hanging up must not cancel the outcome other requests share
        await asyncio.shield(job.done)

    # ------------------------------------------------------------------------ connection

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            transactional_id=self._transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            max_batch_size=_MAX_BATCH_BYTES,
            request_timeout_ms=int(self._timeout_s * 1000),
            transaction_timeout_ms=max(60_000, int(self._timeout_s * 3000)),
        )

    async def _connect(self) -> None:
        if self._topics and not self._topics_declared:
            await declare_topics(
                self._bootstrap,
                self._topics,
                replication_factor=self._replication_factor,
                min_insync_replicas=self._min_insync_replicas,
                timeout_s=self._timeout_s,
            )
            self._topics_declared = True
        if self._discarding:  # the old producer must be gone before its successor fences it
            await asyncio.wait(self._discarding)
        producer = self._new_producer()
        try:
            async with asyncio.timeout(self._timeout_s):
                await producer.start()
                # InitProducerId happens here: it fences a predecessor and aborts its open
                # transaction, so nothing of a failed request can still be committed.
                await producer.begin_transaction()
                await producer.abort_transaction()
        except BaseException:
            self._discard(producer)
            raise
        self._producer = producer
        self._disconnected.clear()
        self.last_error = ""
        log.info("collector connected to Kafka at %s", self._bootstrap)

    async def _keep_connected(self) -> None:
        attempt = 0
        while True:
            await self._disconnected.wait()
            try:
                await self._connect()
                attempt = 0
            except Exception as exc:  # whatever it was, keep trying: requests get 503 meanwhile
                self.last_error = _describe(exc)
                delay = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
                attempt += 1
                if isinstance(exc, _OUTAGES):
                    log.warning("Kafka unreachable (%s); retrying in %.1fs", self.last_error, delay)
                else:
                    log.exception("connecting to Kafka failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)

    def _mark_down(self, exc: BaseException) -> None:
        self.last_error = _describe(exc)
        producer, self._producer = self._producer, None
        if producer is not None:
            self._discard(producer)
        self._disconnected.set()

    def _discard(self, producer: AIOKafkaProducer) -> None:
        task = asyncio.create_task(self._close(producer), name="collector-kafka-discard")
        self._discarding.add(task)
        task.add_done_callback(self._discarding.discard)

    async def _close(self, producer: AIOKafkaProducer) -> None:
        try:
            async with asyncio.timeout(self._timeout_s + 5):
                await producer.stop()
        except Exception as exc:  # a dead producer may fail to close; it is dropped anyway
            log.debug("closing a discarded Kafka producer failed: %s", _describe(exc))

    # ------------------------------------------------------------------------- commits

    def _take_jobs(self, first: _Job) -> list[_Job]:
        jobs, count = [first], len(first.records)
        while count < MAX_RECORDS_PER_TRANSACTION and not self._queue.empty():
            job = self._queue.get_nowait()
            jobs.append(job)
            count += len(job.records)
        return jobs

    async def _commit_loop(self) -> None:
        while True:
            jobs = self._take_jobs(await self._queue.get())
            self._inflight = jobs
            try:
                await self._transaction([record for job in jobs for record in job.records])
            except _OUTAGES as exc:
                log.warning("Kafka transaction failed (%s): answering 503", _describe(exc))
                self._mark_down(exc)
                failure = KafkaUnavailable(f"Kafka did not commit the request ({self.last_error})")
                _settle(jobs, failure)
                self._fail_waiting(failure)
            except Exception as exc:  # a bug: answer 500, and start over with a fresh producer
                log.exception("Kafka transaction failed unexpectedly")
                self._mark_down(exc)
                _settle(jobs, exc)
                self._fail_waiting(KafkaUnavailable("the Kafka producer was reset"))
            else:
                _settle(jobs, None)
            finally:
                self._inflight = []

    async def _transaction(self, records: list[Record]) -> None:
        producer = self._producer
        if producer is None:
            raise KafkaUnavailable(f"Kafka is unreachable ({self.last_error})")
        async with asyncio.timeout(self._timeout_s):
            await producer.begin_transaction()
            sent = [await producer.send(r.topic, r.value, key=r.key) for r in records]
            await asyncio.gather(*sent)
            await producer.commit_transaction()

    def _fail_waiting(self, failure: BaseException) -> None:
        while not self._queue.empty():
            _settle([self._queue.get_nowait()], failure)


def _settle(jobs: list[_Job], failure: BaseException | None) -> None:
    for job in jobs:
        if job.done.done():
            continue
        if failure is None:
            job.done.set_result(None)
        else:
            job.done.set_exception(failure)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."
