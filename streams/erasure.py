"""The erasure stage: a thin Faust adapter around `streams.core.erasure` (decision 0017).

Two agents:

* `requests` reads `privacy.requests` and hands each valid request to the coordinator
  (`<app_id>.erasures`, keyed by request id) as a `Start`;
* `erasures` runs the coordinator: the state of each request lives in a changelogged table
  keyed by request id; the identifier and customer stages answer its erase messages there.

Every step follows decision 0010: outputs are sent and acknowledged before the table is
written, every message carries a `MessageId` and each request's inbox drops repeats. The
phases that wait for something outside the worker (the stages' commits, the sink's position,
ClickHouse) are messages the coordinator sends itself, retried with a back-off, so a worker
killed at any point resumes after restart with the unfinished phase, and the receipt, built
only from the stored state and the `Seal` message, is the same on any replay.

With `suppress_future`, keyed hashes of the request's identifiers go into a global table the
ingest stage consults (`Suppressions`): later touchpoints carrying one are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import faust
import orjson
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import EventT, TopicT

from omnijourney.exceptions import OmnijourneyError, ProtocolViolation
from omnijourney.local.admin import end_offsets
from omnijourney.settings import Settings
from schemas.keystore import pii_key
from schemas.pii import keyed_hash
from schemas.privacy import (
    ErasureReceipt,
    StoreReceipt,
    decode_request,
    identifier_keys,
    receipt_record,
)
from schemas.topics import PRIVACY_REQUESTS_TOPIC
from sinks.erasure import STORE_PREFIX, ErasureResult, erase, save_receipt
from streams.app import bytes_topic
from streams.core.delivery import Inbox, MessageId
from streams.core.erasure import (
    CUSTOMERS_STORE,
    IDENTIFIERS_STORE,
    RESOLVING,
    SEALING,
    SETTLING,
    SWEEPING,
    Erasure,
    ErasureMessage,
    Outgoing,
    Seal,
    Settle,
    Start,
    Sweep,
    begin,
    erasure_message_from_dict,
    erasure_message_to_dict,
    on_answer,
)
from streams.core.messages import CustomerErased, IdentifierErased, Send
from streams.metrics import Metrics
from streams.stitching import ID_FIELD, Stages, encode_send
from streams.topics import COMPACTED_PUBLIC_TOPICS, PUBLIC_TOPICS, erasure_topics, erasures_topic

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Output = tuple[str, bytes, bytes | None]

KAFKA_STORE: Final = "kafka."
"""Receipts name a topic (a changelog, a public topic) as store `kafka.<topic>`."""
_BACKOFF_FIRST_S: Final = 0.2
_BACKOFF_MAX_S: Final = 5.0


def backoff(attempt: int) -> float:
    """Seconds to wait before the next check of a phase (doubling, bounded)."""
    return float(min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** min(attempt, 16)))


def suppression_token(key: bytes, identifier_key: str) -> str:
    """The keyed hash an identifier is suppressed under (never the identifier itself)."""
    return keyed_hash(key, f"suppress:{identifier_key}")


def _decode(value: bytes) -> tuple[MessageId | None, ErasureMessage]:
    try:
        data = orjson.loads(value)
        if not isinstance(data, dict):
            raise ProtocolViolation("erasure message: not a JSON object")
        message_id = MessageId.from_list(data[ID_FIELD]) if ID_FIELD in data else None
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ProtocolViolation(f"erasure message: undecodable ({exc})") from exc
    return message_id, erasure_message_from_dict(data)


def _mark(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


def _unmark(mark: str) -> TopicPartition:
    topic, _, partition = mark.rpartition(":")
    return TopicPartition(topic, int(partition))


class Suppressions:
    """Keyed hashes of suppressed identifiers (a global table: every worker has all of them)."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.key = pii_key(settings)
        self.table = app.GlobalTable(
            "omnijourney-suppressions",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topics.partitions,
            use_partitioner=True,
        )

    def add(self, keys: Iterable[str], at: datetime) -> None:
        """Suppress future touchpoints carrying any of these identifier keys."""
        for key in keys:
            self.table[suppression_token(self.key, key).encode()] = at.isoformat().encode()

    def drops(self, valid_touchpoint: bytes) -> bool:
        """Whether a validated touchpoint carries a suppressed identifier."""
        if not self.table:
            return False
        identities = orjson.loads(valid_touchpoint).get("identities") or ()
        return any(  # a handful of HMACs per touchpoint, and only once something is suppressed
            suppression_token(self.key, f"{item['kind']}:{item['value']}").encode() in self.table
            for item in identities
        )


class ErasureStage:
    """The Faust topics, table and agents of erasure (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        stages: Stages,
        *,
        suppressions: Suppressions,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.settings = settings
        self.stages = stages
        self.suppressions = suppressions
        self.clock = clock
        self.metrics = metrics
        specs = {spec.name: spec for spec in erasure_topics(settings)}
        self.topic_name = erasures_topic(settings)
        self.topics: dict[str, TopicT] = {
            name: bytes_topic(app, spec) for name, spec in specs.items()
        }
        self.topics.update(stages.topics)
        self.table = app.Table(
            "omnijourney-erasures",
            key_type=bytes,
            value_type=bytes,
            partitions=specs[self.topic_name].partitions,
            use_partitioner=True,
        )
        self._admin: AIOKafkaAdminClient | None = None
        app.agent(self.topics[PRIVACY_REQUESTS_TOPIC], name="omnijourney.erasure.requests")(
            self._requests
        )
        app.agent(self.topics[self.topic_name], name="omnijourney.erasure.coordinator")(
            self._coordinator
        )

    # --- agents --------------------------------------------------------------------------------

    async def _requests(self, stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            if event.value is None:
                continue  # the tombstone of a finished request
            try:
                request = decode_request(event.value)
            except OmnijourneyError as exc:
                # never the value: it may hold identifiers
                log.error("privacy.requests[%s]@%s: refused (%s)", message.partition,
                          message.offset, exc)  # fmt: skip
                self.metrics.violations.labels("erasure").inc()
                continue
            start = Start(request.request_id, tuple(identifier_keys(request)),
                          request.suppress_future)  # fmt: skip
            data = erasure_message_to_dict(start)
            data[ID_FIELD] = MessageId(f"p{message.partition}", message.offset, 0).to_list()
            await self.topics[self.topic_name].send(
                key=request.request_id.encode(), value=orjson.dumps(data)
            )
            log.info("erasure %s: requested", request.request_id)

    async def _coordinator(self, stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            self.metrics.events_in.labels("erasure").inc()
            try:
                await self._one(event)
            except ProtocolViolation as exc:
                log.error("erasure: message skipped (%s)", exc)
                self.metrics.violations.labels("erasure").inc()

    async def _one(self, event: EventT[Any]) -> None:
        """One coordinator message: dedupe, run the phase, send, then write the state."""
        key: bytes = event.key or b""
        message_id, message = _decode(event.value or b"")
        stored = self.table.get(key)
        inbox, erasure = Inbox(), None
        if stored is not None:
            data = orjson.loads(stored)
            inbox, erasure = Inbox.from_dict(data["inbox"]), Erasure.from_dict(data["state"])
        if message_id is not None and not inbox.accept(message_id):
            self.metrics.repeats.labels("erasure").inc()
            return
        outputs: list[Output] = []
        erasure, outgoing = await self._phase(erasure, message, message_id, outputs)
        source = f"e{event.message.partition}"
        for index, item in enumerate(outgoing):
            outputs.append(self._encode(item, MessageId(source, event.message.offset, index)))
        await self._send(outputs)
        if erasure is not None:
            self.table[key] = orjson.dumps({"inbox": inbox.to_dict(), "state": erasure.to_dict()})

    async def _phase(
        self,
        erasure: Erasure | None,
        message: ErasureMessage,
        message_id: MessageId | None,
        outputs: list[Output],
    ) -> tuple[Erasure | None, list[Outgoing]]:
        now = self.clock()
        if isinstance(message, Start):
            if erasure is not None:
                return erasure, []  # requested again: one id is erased once
            return begin(message.request_id, message.identifier_keys, message.suppress_future, now)
        if erasure is None:
            raise ProtocolViolation(f"{type(message).__name__} for an unknown erasure")
        if isinstance(message, IdentifierErased | CustomerErased):
            if erasure.phase != RESOLVING:
                return erasure, []
            return erasure, on_answer(erasure, message, message_id, now)
        if isinstance(message, Settle) and erasure.phase == SETTLING:
            return erasure, [await self._settle(erasure, message, outputs)]
        if isinstance(message, Sweep) and erasure.phase == SWEEPING:
            return erasure, [await self._sweep(erasure, message)]
        if isinstance(message, Seal) and erasure.phase == SEALING:
            await self._seal(erasure, message, outputs)
        return erasure, []

    # --- phases --------------------------------------------------------------------------------

    async def _settle(self, erasure: Erasure, message: Settle, outputs: list[Output]) -> Outgoing:
        """Once the stages committed past the erasure: tombstones, suppression; then Sweep."""
        if not await self._stages_committed(erasure.positions):
            await asyncio.sleep(backoff(message.attempt))
            return Settle(erasure.request_id, message.attempt + 1)
        ids = erasure.customer_ids()
        tombstones = {}
        for topic in COMPACTED_PUBLIC_TOPICS:
            outputs.extend((topic, customer.encode(), None) for customer in ids)
            tombstones[KAFKA_STORE + topic] = len(ids)
        await self._send(outputs)  # the marks below must lie after the tombstones
        outputs.clear()
        marks = await self._ends([t for t in PUBLIC_TOPICS if t in self.settings.sink.topics])
        if erasure.suppress_future:
            self.suppressions.add(erasure.identifier_keys(), self.clock())
        log.info("erasure %s: state erased, %d customer ids tombstoned", erasure.request_id,
                 len(ids))  # fmt: skip
        return erasure.published(tombstones, marks, self.clock())

    async def _sweep(self, erasure: Erasure, message: Sweep) -> Outgoing:
        """Once the sink consumed past the tombstones: erase ClickHouse, then Seal."""
        retry = Sweep(erasure.request_id, message.attempt + 1)
        if not await self._sink_passed(erasure.marks):
            if message.attempt and message.attempt % 20 == 0:
                log.warning("erasure %s: waiting for the sink group %r to pass the erasure",
                            erasure.request_id, self.settings.sink.group_id)  # fmt: skip
            await asyncio.sleep(backoff(message.attempt))
            return retry
        try:
            result: ErasureResult = await asyncio.to_thread(
                erase, self.settings, erasure.customer_ids(), erasure.identifier_keys()
            )
        except Exception as exc:  # ClickHouse down, rows inserted meanwhile: try again
            log.warning("erasure %s: ClickHouse not erased yet (%s: %s)", erasure.request_id,
                        type(exc).__name__, str(exc)[:300])  # fmt: skip
            await asyncio.sleep(backoff(message.attempt))
            return retry
        return erasure.swept(dict(result.rows_removed), self.clock())

    async def _seal(self, erasure: Erasure, seal: Seal, outputs: list[Output]) -> None:
        """Every store confirmed: the receipt, stored and published; the request tombstoned."""
        receipt = self.receipt(erasure, seal)
        await asyncio.to_thread(save_receipt, self.settings, receipt)
        topic, key, value = receipt_record(receipt)
        outputs.append((topic, key, value))
        outputs.append((PRIVACY_REQUESTS_TOPIC, erasure.request_id.encode(), None))
        erasure.seal(receipt.completed_at)
        log.info("erasure %s: done, receipt published", receipt.request_id)

    def receipt(self, erasure: Erasure, seal: Seal) -> ErasureReceipt:
        """The receipt of a sealed erasure (the same on every replay of the Seal)."""
        names = {
            IDENTIFIERS_STORE: self.stages.identifiers.changelog_topic.get_topic_name(),
            CUSTOMERS_STORE: self.stages.customers.changelog_topic.get_topic_name(),
        }
        stores = []
        for done in erasure.receipt_stores(seal, lambda table: STORE_PREFIX + table):
            name = done.store if "." in done.store else KAFKA_STORE + names[done.store]
            stores.append(
                StoreReceipt(
                    store=name.lower(),
                    keys_removed=done.keys_removed,
                    rows_removed=done.rows_removed,
                    completed_at=min(done.completed_at, seal.completed_at),
                )
            )
        return ErasureReceipt(
            request_id=erasure.request_id,
            stores=tuple(stores),
            customer_ids_count=len(erasure.customer_ids()),
            started_at=min(erasure.started_at, *(s.completed_at for s in stores)),
            completed_at=seal.completed_at,
        )

    # --- I/O -----------------------------------------------------------------------------------

    def _encode(self, item: Outgoing, message_id: MessageId) -> Output:
        if isinstance(item, Send):
            return encode_send(item, self.stages.internal, message_id)
        data = erasure_message_to_dict(item)
        data[ID_FIELD] = message_id.to_list()
        return self.topic_name, item.request_id.encode(), orjson.dumps(data)

    async def _send(self, outputs: list[Output]) -> None:
        """Send every output and wait until the broker has them all."""
        pending: list[Awaitable[Any]] = []
        for topic, key, value in outputs:
            pending.append(await self.topics[topic].send(key=key, value=value))
            self.metrics.events_out.labels("erasure", topic).inc()
        if pending:
            await asyncio.gather(*pending)

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka.bootstrap)
            await admin.start()
            self._admin = admin
        return self._admin

    async def _committed(self, group: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        admin = await self._admin_client()
        found = await admin.list_consumer_group_offsets(group, partitions=tps)
        return {tp: offsets.offset for tp, offsets in found.items()}

    async def _stages_committed(self, positions: Mapping[str, int]) -> bool:
        """Whether this worker's group committed past every erase message (no replay left)."""
        topics = {source: topic for topic, source in self.stages.sources.items()}
        wanted = {
            TopicPartition(topics[source[0]], int(source[1:])): offset
            for source, offset in positions.items()
        }
        if not wanted:
            return True
        committed = await self._committed(self.settings.worker.app_id, list(wanted))
        return all(committed.get(tp, -1) > offset for tp, offset in wanted.items())

    async def _ends(self, topics: list[str]) -> dict[str, int]:
        ends = await end_offsets(self.settings.kafka.bootstrap, topics)
        return {_mark(tp): int(offset) for tp, offset in ends.items()}

    async def _sink_passed(self, marks: Mapping[str, int]) -> bool:
        """Whether the ClickHouse sink committed every public record up to the tombstones."""
        wanted = {_unmark(mark): offset for mark, offset in marks.items() if offset > 0}
        if not wanted:
            return True
        committed = await self._committed(self.settings.sink.group_id, list(wanted))
        return all(committed.get(tp, -1) >= offset for tp, offset in wanted.items())


def utc_clock() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


def register_erasure(
    app: faust.App,
    settings: Settings,
    stages: Stages,
    *,
    clock: Clock = utc_clock,
    metrics: Metrics | None = None,
) -> ErasureStage:
    """Add the erasure agents, their table and the suppression list to the app."""
    suppressions = Suppressions(app, settings)
    return ErasureStage(
        app,
        settings,
        stages,
        suppressions=suppressions,
        clock=clock,
        metrics=metrics or stages.metrics,
    )
