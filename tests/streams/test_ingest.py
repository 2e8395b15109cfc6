"""The ingest stage in a real worker process against the real broker.

The worker runs as `python -m omnijourney.cli worker` with its own data dir and consumer
group; messages are produced straight to the raw topics (as a foreign producer would) or
through the collector, and the outputs are read back from Kafka.
"""

from __future__ import annotations

import asyncio
import hashlib
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from omnijourney.settings import Settings
from schemas.deadletter import DeadLetter, SourcePosition
from schemas.examples import examples
from schemas.pii import PiiHasher
from schemas.topics import DEADLETTER_TOPIC, VALID_TOPIC
from schemas.validation import REASONS, decode_touchpoint
from streams.routing import route
from streams.topics import raw_topic_names
from tests.pipeline_support import (
    CLEAR_EMAIL,
    PII_KEY,
    WEB_SECRET,
    Worker,
    collector_settings,
    end_offsets,
    fresh,
)

pytestmark = pytest.mark.kafka

HASHER = PiiHasher(PII_KEY.encode(), "US")
RAW_TOPICS = raw_topic_names()
WAIT_S = 90.0


class Outputs:
    """Reads touchpoints.valid and touchpoints.deadletter from where they ended at the start."""

    def __init__(self, bootstrap: str, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

        async def start() -> AIOKafkaConsumer:
            ends = await end_offsets(bootstrap, [VALID_TOPIC, DEADLETTER_TOPIC])
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap,
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
            await consumer.start()
            consumer.assign(list(ends))
            for tp, offset in ends.items():
                consumer.seek(tp, offset)
            return consumer

        self.consumer = loop.run_until_complete(start())
        self.valid: Counter[str] = Counter()
        self.valid_values: dict[str, bytes] = {}
        self.letters: dict[tuple[str, int, int], list[DeadLetter]] = {}

    def _take(self, records: Any) -> None:
        for record in records:
            if record.topic == VALID_TOPIC:
                event_id = orjson.loads(record.value)["event_id"]
                self.valid[event_id] += 1
                self.valid_values[event_id] = record.value
            else:
                letter = DeadLetter.model_validate_json(record.value)
                if letter.source is not None:
                    source = letter.source
                    key = (source.topic, source.partition, source.offset)
                    self.letters.setdefault(key, []).append(letter)

    def wait_for(
        self, event_ids: set[str], sources: set[tuple[str, int, int]], timeout: float = WAIT_S
    ) -> None:
        """Read until every event id is valid and every source has a dead letter."""

        async def poll() -> None:
            deadline = self.loop.time() + timeout
            while not (event_ids <= set(self.valid) and sources <= set(self.letters)):
                if self.loop.time() > deadline:
                    missing_ids = event_ids - set(self.valid)
                    missing = sources - set(self.letters)
                    raise AssertionError(f"missing valid {missing_ids}, dead letters {missing}")
                batches = await self.consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    self._take(records)

        self.loop.run_until_complete(poll())

    def close(self) -> None:
        self.loop.run_until_complete(self.consumer.stop())


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def outputs(
    worker: Worker, kafka_bootstrap: str, loop: asyncio.AbstractEventLoop
) -> Iterator[Outputs]:
    outputs = Outputs(kafka_bootstrap, loop)
    yield outputs
    outputs.close()


@pytest.fixture(scope="module")
def producer(kafka_bootstrap: str, loop: asyncio.AbstractEventLoop) -> Iterator[AIOKafkaProducer]:
    async def start() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        return producer

    producer = loop.run_until_complete(start())
    yield producer
    loop.run_until_complete(producer.stop())


def _produce(
    loop: asyncio.AbstractEventLoop, producer: AIOKafkaProducer, messages: list[tuple[str, bytes]]
) -> list[tuple[str, int, int]]:
    async def send() -> list[tuple[str, int, int]]:
        futures = [await producer.send(topic, value) for topic, value in messages]
        metas = await asyncio.gather(*futures)
        return [(m.topic, m.partition, m.offset) for m in metas]

    return loop.run_until_complete(send())


# ------------------------------------------------------------------------- bad messages

_EXAMPLES = examples()
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)  # JSON has no surrogates
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_FIELDS = ["event_id", "channel", "type", "occurred_at", "identities", "properties", "sent_at"]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid example broken in one way."""
    event = dict(draw(st.sampled_from(_EXAMPLES)))
    event["event_id"] = str(uuid.uuid4())
    how = draw(
        st.sampled_from(
            ["drop", "replace", "placeholder", "naive", "huge", "truncate", "channel", "extra"]
        )
    )
    if how == "drop":
        del event[draw(st.sampled_from([f for f in _FIELDS if f != "sent_at"]))]
    elif how == "replace":
        event[draw(st.sampled_from(_FIELDS))] = draw(_json_values)
    elif how == "placeholder":
        value = draw(st.sampled_from(["", "0", "null", "undefined", "anonymous", "-1"]))
        event["identities"] = [{"kind": "customer_id", "value": value}]
    elif how == "naive":
        event["occurred_at"] = "2024-05-01T10:00:00"
    elif how == "huge":
        event["properties"] = {**event.get("properties", {}), "custom": {"x": "y" * 70_000}}
    elif how == "channel":
        event["channel"] = draw(_text.filter(bool))
    elif how == "extra":
        event[draw(_text.filter(lambda k: k and k not in event))] = 1
    raw = orjson.dumps(event)
    if how == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    return raw


_bad_payloads = st.one_of(st.binary(max_size=300), _json_values.map(orjson.dumps), _mutated())


def _refused(topic: str, raw: bytes) -> bool:
    """The oracle: the pure routing refuses this message on this topic."""
    record = route(
        raw,
        source=SourcePosition(topic=topic, partition=0, offset=0),
        received=datetime.now(UTC),
        hasher=HASHER,
    )
    return record.topic == DEADLETTER_TOPIC


@st.composite
def _traffic(draw: st.DrawFn) -> list[tuple[str, bytes, str | None]]:
    """Bad messages (event id None) mixed with good ones, each on some raw topic."""
    messages: list[tuple[str, bytes, str | None]] = []
    for _ in range(draw(st.integers(1, 12))):
        topic = draw(st.sampled_from(RAW_TOPICS))
        raw = draw(_bad_payloads.filter(lambda r, t=topic: _refused(t, r)))
        messages.append((topic, raw, None))
    for _ in range(draw(st.integers(1, 4))):
        event = fresh(draw(st.sampled_from(["web", "app", "pos", "callcenter", "crm"])))
        messages.insert(
            draw(st.integers(0, len(messages))),
            (f"touchpoints.{event['channel']}", orjson.dumps(event), event["event_id"]),
        )
    return messages


@hsettings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(traffic=_traffic())
def test_every_bad_message_gets_one_dead_letter_and_good_ones_flow_on(
    traffic: list[tuple[str, bytes, str | None]],
    producer: AIOKafkaProducer,
    outputs: Outputs,
    loop: asyncio.AbstractEventLoop,
) -> None:
    positions = _produce(loop, producer, [(topic, raw) for topic, raw, _ in traffic])
    bad = {pos: raw for pos, (_, raw, good) in zip(positions, traffic, strict=True) if good is None}
    good = {good for _, _, good in traffic if good is not None}
    outputs.wait_for(good, set(bad))
    for position, raw in bad.items():
        [letter] = outputs.letters[position]  # exactly one dead letter per bad message
        assert letter.reason in REASONS and letter.stage == "ingest"
        assert letter.errors or letter.reason == "processing_error"
        assert letter.original_sha256 == hashlib.sha256(raw).hexdigest()
        assert CLEAR_EMAIL not in letter.original()
    for event_id in good:
        assert outputs.valid[event_id] == 1
        touchpoint = decode_touchpoint(outputs.valid_values[event_id])
        assert touchpoint.event_id == event_id
        assert CLEAR_EMAIL not in outputs.valid_values[event_id]


def test_aborted_transactions_are_never_ingested(
    kafka_bootstrap: str, outputs: Outputs, loop: asyncio.AbstractEventLoop
) -> None:
    aborted, committed = fresh("web", "page_view"), fresh("web", "page_view")
    key = b"anonymous_id:same-partition-for-both"

    async def produce() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=f"test-{uuid.uuid4().hex}"
        )
        await producer.start()
        try:
            await producer.begin_transaction()
            await (await producer.send("touchpoints.web", orjson.dumps(aborted), key=key))
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send("touchpoints.web", orjson.dumps(committed), key=key)
        finally:
            await producer.stop()

    loop.run_until_complete(produce())
    outputs.wait_for({committed["event_id"]}, set())
    # same partition, earlier offset: had the worker read it, it would be there by now
    assert aborted["event_id"] not in outputs.valid


def test_collector_batch_flows_through_ingest_hashed(
    kafka_settings: Settings,
    kafka_bootstrap: str,
    outputs: Outputs,
    loop: asyncio.AbstractEventLoop,
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from omnijourney.collector.server import build, create_app

    settings = collector_settings(kafka_settings, kafka_bootstrap)
    events = [fresh("web", e["type"]) for e in _EXAMPLES if e["channel"] == "web"]

    async def post() -> None:
        collector, _ = build(settings)
        async with TestClient(TestServer(create_app(collector))) as client:
            assert await collector.delivery.wait_connected(60)
            response = await client.post(
                "/v1/touchpoints",
                data=orjson.dumps(events),
                headers={"Authorization": f"Bearer {WEB_SECRET}"},
            )
            assert response.status == 202

    loop.run_until_complete(post())
    ids = {e["event_id"] for e in events}
    outputs.wait_for(ids, set())
    for event_id in ids:
        assert outputs.valid[event_id] == 1
        value = outputs.valid_values[event_id]
        assert CLEAR_EMAIL not in value
        touchpoint = decode_touchpoint(value)
        assert touchpoint.received_at.tzinfo is not None
    login = next(
        decode_touchpoint(outputs.valid_values[e["event_id"]])
        for e in events
        if e["type"] == "login"
    )
    assert {i.kind for i in login.identities} >= {"email_hash", "customer_id", "anonymous_id"}


def test_worker_health_endpoint(worker: Worker) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/health", timeout=5) as response:
        body = orjson.loads(response.read())
    assert body["status"] == "ok" and body["assigned_partitions"] >= len(RAW_TOPICS)
