"""The identity and journey stages: thin Faust adapters around `streams.core.Stitcher`.

Three agents, one per key kind of the core's protocol:

* `route` reads `touchpoints.valid`, turns each touchpoint into a core `Touch` and sends it to
  the partition of its strongest identifier (`<app_id>.identifiers`);
* `identifiers` keeps the identifier-keyed state (which customer owns it) in a changelogged
  table and answers the protocol's identifier messages;
* `customers` keeps the customer-keyed state (profile, sessions, journeys) in a changelogged
  table, answers the customer messages and publishes the core's records on the public topics,
  keyed by customer id.

Effectively once over Kafka's at-least-once (decision 0010): each stage takes a batch, runs
the core over it (states in a batch-local overlay), sends every output and waits until the
broker has them all, only then writes the tables and waits for their changelog records, and
only then acks the batch's offsets for commit. Every protocol message carries a
`MessageId` (source partition, offset, index) and each key's `Inbox` drops what it applied
already, so a replay after a crash changes nothing twice and re-sends only identical,
versioned records.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import faust
import orjson
from faust.types import AgentT, EventT, TopicT

from omnijourney.exceptions import OmnijourneyError, ProtocolViolation
from omnijourney.settings import Settings
from schemas.contracts import record_key
from schemas.validation import decode_touchpoint
from streams.app import bytes_topic
from streams.convert import core_config, to_touch
from streams.core import Send, Stitcher, Topic, message_from_dict, message_to_dict
from streams.core.delivery import Inbox, MessageId
from streams.core.records import ConsentChange, JourneyUpdate, LinkRejection, Merge, Record
from streams.metrics import Metrics
from streams.outputs import Output, kafka_producer, produce_until_acked, until_acked
from streams.personalization import personalization_outputs
from streams.topics import (
    TOPIC_OF_RECORD,
    VALID_TOPIC,
    customers_topic,
    erasure_topics,
    erasures_topic,
    identifiers_topic,
    stitching_topics,
)

log = logging.getLogger(__name__)

ID_FIELD: Final = "_id"
"""The message id's field in an internal message (the core's decoders ignore it)."""

Step = Callable[[str, Any, Any], tuple[Any, list[Record], list[Send]]]


def encode_record(record: Record) -> Output:
    """(topic, key, value) of a core record on its public topic, keyed by customer id."""
    data = record.to_dict()
    return TOPIC_OF_RECORD[record.record_type], record_key(data).encode(), orjson.dumps(data)


def encode_send(send: Send, internal: Mapping[Topic, str], message_id: MessageId) -> Output:
    """(topic, key, value) of a protocol message on the internal topic of its key kind."""
    data = message_to_dict(send.message)
    data[ID_FIELD] = message_id.to_list()
    return internal[send.topic], send.key.encode(), orjson.dumps(data)


def decode_message(value: bytes) -> tuple[MessageId | None, Any]:
    """(id, message) of an internal message; ProtocolViolation if it is not one."""
    try:
        data = orjson.loads(value)
        message_id = MessageId.from_list(data[ID_FIELD]) if ID_FIELD in data else None
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ProtocolViolation(f"internal message: undecodable ({exc})") from exc
    if not isinstance(data, dict):
        raise ProtocolViolation("internal message: not a JSON object")
    return message_id, message_from_dict(data)


def encode_state(inbox: Inbox, state: Any) -> bytes:
    """A table value: the key's inbox and its core state."""
    return orjson.dumps({"inbox": inbox.to_dict(), "state": state.to_dict()})


class _Keyed(NamedTuple):
    """A keyed stage: its table, the core's step and the loader of a stored core state."""

    table: Any
    step: Step
    load: Callable[[Mapping[str, Any]], Any]


class _Batch:
    """What one batch of a stage produced: outputs in order, states to write after them."""

    __slots__ = ("outputs", "received", "states", "table")

    def __init__(self, table: Any = None) -> None:
        self.table = table
        """Where `states` go (None: the stage keeps no state)."""
        self.outputs: list[Output] = []
        self.states: dict[bytes, tuple[Inbox, Any]] = {}
        """Key -> (inbox, core state) to write; a None state deletes the key."""
        self.received: list[datetime] = []
        """received_at of the touches whose journey changed (for the latency histogram)."""


class Stages:
    """The Faust topics, tables and agents of the stitching stages."""

    def __init__(
        self, app: faust.App, settings: Settings, stitcher: Stitcher, metrics: Metrics
    ) -> None:
        self.app = app
        self.stitcher = stitcher
        self.metrics = metrics
        self.batch_max = settings.worker.batch_max
        self.batch_wait = settings.worker.batch_wait_ms / 1000
        specs = {spec.name: spec for spec in stitching_topics(settings)}
        identifiers, customers = identifiers_topic(settings), customers_topic(settings)
        # the stages answer erasure requests on the coordinator's topic (streams.erasure)
        specs.update((spec.name, spec) for spec in erasure_topics(settings))
        erasures = erasures_topic(settings)
        self.internal = {
            Topic.IDENTIFIER: identifiers,
            Topic.CUSTOMER: customers,
            Topic.ERASURE: erasures,
        }
        self.sources = {VALID_TOPIC: "v", identifiers: "i", customers: "c", erasures: "e"}
        self.topics: dict[str, TopicT] = {
            name: bytes_topic(app, spec) for name, spec in specs.items()
        }
        # use_partitioner: a write goes to the changelog partition of its key (the key's
        # partition of the stage's topic), so tables can be written after a whole batch.
        self.identifiers = app.Table(
            "omnijourney-identifiers",
            key_type=bytes,
            value_type=bytes,
            partitions=specs[identifiers].partitions,
            use_partitioner=True,
        )
        self.customers = app.Table(
            "omnijourney-customers",
            key_type=bytes,
            value_type=bytes,
            partitions=specs[customers].partitions,
            use_partitioner=True,
        )
        self.agents: dict[str, AgentT[Any]] = {
            "route": self._agent(VALID_TOPIC, "route", self._route),
            "identifiers": self._agent(
                identifiers,
                "identifiers",
                self._keyed(
                    _Keyed(
                        self.identifiers, stitcher.identifier_step, stitcher.identifier_from_dict
                    )
                ),
            ),
            "customers": self._agent(
                customers,
                "customers",
                self._keyed(
                    _Keyed(self.customers, stitcher.customer_step, stitcher.customer_from_dict)
                ),
            ),
        }

    # --- agents --------------------------------------------------------------------------------

    def _agent(
        self, topic: str, name: str, handle: Callable[[str, Sequence[EventT[Any]]], _Batch]
    ) -> AgentT[Any]:
        async def agent(stream: faust.StreamT[Any]) -> None:
            batches = stream.take_events(self.batch_max, within=self.batch_wait)  # type: ignore[attr-defined]
            async for events in batches:
                self.metrics.events_in.labels(name).inc(len(events))
                batch = handle(name, events)
                await self._flush(name, batch)

        return self.app.agent(self.topics[topic], name=f"omnijourney.stitch.{name}")(agent)

    async def _flush(self, stage: str, batch: _Batch) -> None:
        """Send the outputs, wait until the broker has them all, then write the states."""
        # A broker outage is waited out (the whole batch is sent again) before any table
        # write of this batch: nothing of it is applied until every output is in Kafka.
        producer = kafka_producer(self.app)
        await produce_until_acked(producer, batch.outputs)
        for topic, count in Counter(topic for topic, _, _ in batch.outputs).items():
            self.metrics.events_out.labels(stage, topic).inc(count)
        if batch.states:
            # A table write picks its changelog partition from the producer's metadata without
            # waiting for it; a changelog created at start-up may not be in it yet.
            await producer.partitions_for(batch.table.changelog_topic.get_topic_name())
        # The table writes' changelog records are awaited too: the batch's offsets are acked
        # (and then committed) only after the broker has every state they led to. A None
        # state was erased: its key gets a tombstone.
        await until_acked(lambda: _write_states(batch), f"writing {len(batch.states)} states")
        if batch.received:
            now = datetime.now(UTC)
            for received in batch.received:
                self.metrics.latency.observe(max(0.0, (now - received).total_seconds()))

    # --- the stages ----------------------------------------------------------------------------

    def _route(self, stage: str, events: Sequence[EventT[Any]]) -> _Batch:
        batch = _Batch()
        for event in events:
            message = event.message
            try:
                touch = to_touch(decode_touchpoint(event.value or b""))
            except OmnijourneyError as exc:
                # touchpoints.valid holds what the ingest stage validated: this is a bug or a
                # foreign producer; the message is skipped with a log line, never retried.
                log.error("touchpoints.valid: undecodable message skipped (%s)", exc)
                self.metrics.violations.labels(stage).inc()
                continue
            # without analytics consent: an anonymous record and consent notices (decision 0016)
            records, sends = self.stitcher.admit(touch)
            self._outputs(batch, self._source(message), message.offset, records, sends)
        return batch

    def _keyed(self, keyed: _Keyed) -> Callable[[str, Sequence[EventT[Any]]], _Batch]:
        def handle(stage: str, events: Sequence[EventT[Any]]) -> _Batch:
            batch = _Batch(keyed.table)
            for event in events:
                self._one(stage, keyed, batch, event)
            return batch

        return handle

    def _one(self, stage: str, keyed: _Keyed, batch: _Batch, event: EventT[Any]) -> None:
        """One protocol message: dedupe by id, run the core, collect outputs and state."""
        message = event.message
        key: bytes = event.key or b""
        try:
            message_id, decoded = decode_message(event.value or b"")
        except ProtocolViolation as exc:
            log.error("%s[%s]@%s: skipped (%s)", message.topic, message.partition,
                      message.offset, exc)  # fmt: skip
            self.metrics.violations.labels(stage).inc()
            return
        inbox, state = batch.states.get(key) or _load(keyed, key)
        if message_id is not None and not inbox.accept(message_id):
            self.metrics.repeats.labels(stage).inc()
            return
        try:
            state, records, sends = keyed.step(key.decode(), state, decoded)
        except ProtocolViolation as exc:
            log.error("%s %s: %s refused (%s)", stage, key.decode(), type(decoded).__name__, exc)
            self.metrics.violations.labels(stage).inc()
            records, sends = [], []
        if state is not None:
            batch.states[key] = (inbox, state)
        elif key in batch.states or key in keyed.table:
            # Erased, inbox and all: a later message to the key starts afresh. A replay of an
            # older one cannot bring it back: the coordinator waits until this stage
            # committed past the erasure before it confirms anything (streams.erasure).
            batch.states[key] = (Inbox(), None)
        self._outputs(batch, self._source(message), message.offset, records, sends)
        touch = getattr(decoded, "touch", None)
        if touch is not None and any(type(r) is JourneyUpdate for r in records):
            batch.received.append(touch.received_at)

    def _source(self, message: Any) -> str:
        """The source log of a consumed message, as message ids name it (`v0`, `i3`, `c1`)."""
        return f"{self.sources[message.topic]}{message.partition}"

    def _outputs(
        self, batch: _Batch, source: str, offset: int, records: Iterable[Record], sends: list[Send]
    ) -> None:
        out = batch.outputs
        for record in records:
            kind = type(record)
            if kind is Merge:
                self.metrics.merges.inc()
            elif isinstance(record, LinkRejection):
                self.metrics.rejections.labels(record.rule).inc()
            if kind is ConsentChange:  # a signal for the personalization topic only
                out.extend(personalization_outputs(record))
                continue
            encoded = encode_record(record)
            out.append(encoded)
            if kind is JourneyUpdate or kind is Merge:
                out.extend(personalization_outputs(record, encoded[2]))
        for index, send in enumerate(sends):
            out.append(encode_send(send, self.internal, MessageId(source, offset, index)))


async def _write_states(batch: _Batch) -> None:
    """Write a batch's states (None: erased) and wait for their changelog records."""
    writes = [
        _write(batch.table, key, None if state is None else encode_state(inbox, state))
        for key, (inbox, state) in batch.states.items()
    ]
    await asyncio.gather(*writes)


def _write(table: Any, key: bytes, value: bytes | None) -> Awaitable[Any]:
    """Store a table value (None: delete the key) and send it to the changelog (None: a
    tombstone, sent again on a retry); the future is the broker's ack.

    `table[key] = value` would send it too, but through Faust's producer buffer without a
    handle to wait on, and Faust's pre-commit flush gives up on that buffer after 0.1 s idle.
    """
    if value is None:
        table.data.pop(key, None)
    else:
        table.data[key] = value
    return table.send_changelog(None, key, value)  # type: ignore[no-any-return]


def _load(keyed: _Keyed, key: bytes) -> tuple[Inbox, Any]:
    """The stored inbox and core state of a key (a new inbox and None if it has none)."""
    stored = keyed.table.get(key)
    if stored is None:
        return Inbox(), None
    data = orjson.loads(stored)
    return Inbox.from_dict(data["inbox"]), keyed.load(data["state"])


def register_stitching(
    app: faust.App,
    settings: Settings,
    stitcher: Stitcher | None = None,
    metrics: Metrics | None = None,
) -> Stages:
    """Add the route, identifier and customer agents (and their tables) to the app."""
    return Stages(app, settings, stitcher or Stitcher(core_config(settings)), metrics or Metrics())
