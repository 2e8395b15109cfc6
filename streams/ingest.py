"""The ingest stage: one Faust agent per `touchpoints.<channel>` topic.

Each agent only moves bytes: `streams.routing.route` decides, per message, whether it is a
validated touchpoint (to `touchpoints.valid`, keyed by its strongest identifier) or a dead
letter (to `touchpoints.deadletter`). `route` never raises for bad input, so a poison message
cannot stall its partition; a broker outage makes the send fail, the agent crash and restart
from the last committed offset (Faust commits only what was produced): retried, not lost.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import faust
from faust.types import AgentT, EventT, TopicT

from omnijourney.settings import Settings
from schemas.deadletter import SourcePosition
from schemas.pii import PiiHasher
from streams.app import bytes_topic
from streams.metrics import Metrics
from streams.routing import LOG_APPEND_TIME, received_at, route
from streams.topics import DEADLETTER_TOPIC, VALID_TOPIC, collector_topics, pipeline_topics

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Suppressed = Callable[[bytes], bool]
"""Whether a validated touchpoint carries an identifier an erasure suppressed."""


def _never(valid_touchpoint: bytes) -> bool:
    return False


def _ingest(
    outputs: Mapping[str, TopicT],
    hasher: PiiHasher,
    clock: Clock,
    metrics: Metrics,
    suppressed: Suppressed,
) -> Callable[[faust.StreamT[Any]], Awaitable[None]]:
    async def ingest(stream: faust.StreamT[Any]) -> None:
        warned: set[str] = set()
        events: AsyncIterable[EventT[Any]] = stream.events()
        async for event in events:
            message = event.message
            if message.timestamp_type != LOG_APPEND_TIME and message.topic not in warned:
                warned.add(message.topic)
                log.warning(
                    "%s does not use LogAppendTime: received_at falls back to this worker's "
                    "clock (create the topic with message.timestamp.type=LogAppendTime)",
                    message.topic,
                )
            source = SourcePosition(
                topic=message.topic, partition=message.partition, offset=message.offset
            )
            received = received_at(message.timestamp, message.timestamp_type, now=clock())
            record = route(message.value, source=source, received=received, hasher=hasher)
            metrics.events_in.labels("ingest").inc()
            if record.topic == VALID_TOPIC and suppressed(record.value):
                metrics.suppressed.inc()  # dropped before any link or row is made
                continue
            await outputs[record.topic].send(key=record.key, value=record.value)
            metrics.events_out.labels("ingest", record.topic).inc()
            if record.topic == DEADLETTER_TOPIC:
                metrics.dead_letters.labels("ingest").inc()

    return ingest


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
    outputs = {name: bytes_topic(app, spec) for name, spec in specs.items() if name not in raw}
    agents: dict[str, AgentT[Any]] = {}
    for name in raw:
        agent = app.agent(bytes_topic(app, specs[name]), name=f"omnijourney.ingest.{name}")
        agents[name] = agent(_ingest(outputs, hasher, clock, metrics or Metrics(), suppressed))
    return agents
