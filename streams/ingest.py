"""The ingest stage: one Faust agent per `touchpoints.<channel>` topic.

Each agent only moves bytes: `streams.routing.route` decides, per message, whether it is a
validated touchpoint (to `touchpoints.valid`, keyed by its strongest identifier) or a dead
letter (to `touchpoints.deadletter`). `route` never raises for bad input, so a poison message
cannot stall its partition. Messages are taken in batches (settings `worker.batch_max`,
`worker.batch_wait_ms`); a batch's outputs are acknowledged by the broker before its events
are acknowledged to Faust, so its offsets commit only once the broker has its outputs: a broker
outage holds the batch (the producer retries), nothing is lost.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable
from datetime import datetime
from typing import Any

import faust
from faust.types import AgentT, EventT

from omnijourney.settings import Settings
from schemas.deadletter import SourcePosition
from schemas.pii import PiiHasher
from streams.app import bytes_topic
from streams.metrics import Metrics
from streams.outputs import Output, kafka_producer, produce_until_acked
from streams.routing import LOG_APPEND_TIME, received_at, route
from streams.topics import DEADLETTER_TOPIC, VALID_TOPIC, collector_topics, pipeline_topics

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Suppressed = Callable[[bytes], bool]
"""Whether a validated touchpoint carries an identifier an erasure suppressed."""


def _never(valid_touchpoint: bytes) -> bool:
    return False


def _ingest(
    app: faust.App,
    settings: Settings,
    hasher: PiiHasher,
    clock: Clock,
    metrics: Metrics,
    *,
    suppressed: Suppressed,
) -> Callable[[faust.StreamT[Any]], Awaitable[None]]:
    batch_max, within = settings.worker.batch_max, settings.worker.batch_wait_ms / 1000

    async def ingest(stream: faust.StreamT[Any]) -> None:
        warned: set[str] = set()
        batches: AsyncIterable[list[EventT[Any]]] = stream.take_events(batch_max, within)  # type: ignore[attr-defined]
        async for events in batches:
            outputs = []
            for event in events:
                topic, key, value = _route(event, warned, hasher, clock)
                if topic == VALID_TOPIC and value is not None and suppressed(value):
                    metrics.suppressed.inc()  # dropped before any link or row is made
                    continue
                outputs.append((topic, key, value))
            # Acknowledged by the broker before the events are (take_events acks them after
            # this body): their offsets cannot commit before the outputs are in Kafka.
            await produce_until_acked(kafka_producer(app), outputs)
            metrics.events_in.labels("ingest").inc(len(events))
            for topic, count in Counter(topic for topic, _, _ in outputs).items():
                metrics.events_out.labels("ingest", topic).inc(count)
                if topic == DEADLETTER_TOPIC:
                    metrics.dead_letters.labels("ingest").inc(count)

    return ingest


def _route(event: EventT[Any], warned: set[str], hasher: PiiHasher, clock: Clock) -> Output:
    """(topic, key, value) of one raw message: its validated touchpoint or its dead letter."""
    message = event.message
    if message.timestamp_type != LOG_APPEND_TIME and message.topic not in warned:
        warned.add(message.topic)
        log.warning(
            "%s does not use LogAppendTime: received_at falls back to this worker's "
            "clock (create the topic with message.timestamp.type=LogAppendTime)",
            message.topic,
        )
    source = SourcePosition(topic=message.topic, partition=message.partition, offset=message.offset)
    received = received_at(message.timestamp, message.timestamp_type, now=clock())
    record = route(message.value, source=source, received=received, hasher=hasher)
    return record.topic, record.key, record.value


def register_ingest(
    app: faust.App,
    settings: Settings,
    *,
    hasher: PiiHasher,
    clock: Clock,
    metrics: Metrics | None = None,
    suppressed: Suppressed = _never,
) -> dict[str, AgentT[Any]]:
    """Add an ingest agent for every channel topic; the agents by source topic."""
    specs = {spec.name: spec for spec in pipeline_topics(settings)}
    raw = [spec.name for spec in collector_topics(settings)]
    agents: dict[str, AgentT[Any]] = {}
    for name in raw:
        agent = app.agent(bytes_topic(app, specs[name]), name=f"omnijourney.ingest.{name}")
        agents[name] = agent(
            _ingest(app, settings, hasher, clock, metrics or Metrics(), suppressed=suppressed)
        )
    return agents
