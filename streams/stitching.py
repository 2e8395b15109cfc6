"""The identity and journey stages: thin Faust adapters around `streams.core.Stitcher`.

Three agents, one per key kind of the core's protocol:

* `route` reads `touchpoints.valid`, turns each touchpoint into a core `Touch` and sends it to
  the partition of its strongest identifier (`omnijourney.identifiers`);
* `identifiers` keeps the identifier-keyed state (which customer owns it) in a changelogged
  table and answers the protocol's identifier messages;
* `customers` keeps the customer-keyed state (profile, sessions, journeys) in a changelogged
  table, answers the customer messages and publishes the core's records on the public topics,
  keyed by customer id.

Per message: decode, call the core, send what it produced, then write the table. Outputs are
queued on the producer before the state write, and Faust flushes the producer before it
commits an offset, so a crash replays messages whose outputs may already be out: the core is
deterministic and the records carry versions, so consumers recognize a repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
import orjson
from faust.types import AgentT, TopicT

from omnijourney.exceptions import OmnijourneyError
from omnijourney.settings import Settings
from schemas.validation import decode_touchpoint
from streams.app import bytes_topic
from streams.convert import to_touch
from streams.core import Send, Stitcher, Topic, message_from_dict, message_to_dict
from streams.core.records import Record
from streams.topics import (
    TOPIC_OF_RECORD,
    VALID_TOPIC,
    customers_topic,
    identifiers_topic,
    stitching_topics,
)

log = logging.getLogger(__name__)


def encode_record(record: Record) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of a core record on its public topic, keyed by customer id."""
    data = record.to_dict()
    key = str(data.get("customer_id") or data.get("survivor_id") or "")
    return TOPIC_OF_RECORD[record.record_type], key.encode(), orjson.dumps(data)


def encode_send(send: Send, internal: Mapping[Topic, str]) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of a protocol message on the internal topic of its key kind."""
    return internal[send.topic], send.key.encode(), orjson.dumps(message_to_dict(send.message))


class Stages:
    """The Faust topics, tables and agents of the stitching stages."""

    def __init__(self, app: faust.App, settings: Settings, stitcher: Stitcher) -> None:
        self.app = app
        self.stitcher = stitcher
        specs = {spec.name: spec for spec in stitching_topics(settings)}
        identifiers, customers = identifiers_topic(settings), customers_topic(settings)
        self.internal = {Topic.IDENTIFIER: identifiers, Topic.CUSTOMER: customers}
        self.topics: dict[str, TopicT] = {
            name: bytes_topic(app, spec) for name, spec in specs.items()
        }
        self.identifiers = app.Table(
            "omnijourney-identifiers",
            key_type=bytes,
            value_type=bytes,
            partitions=specs[identifiers].partitions,
        )
        self.customers = app.Table(
            "omnijourney-customers",
            key_type=bytes,
            value_type=bytes,
            partitions=specs[customers].partitions,
        )
        self.agents: dict[str, AgentT[Any]] = {
            "route": self._agent(VALID_TOPIC, "route", self._route),
            "identifiers": self._agent(identifiers, "identifiers", self._identifier),
            "customers": self._agent(customers, "customers", self._customer),
        }

    def _agent(
        self, topic: str, name: str, handle: Callable[[bytes, bytes], Awaitable[None]]
    ) -> AgentT[Any]:
        async def agent(stream: faust.StreamT[Any]) -> None:
            async for event in stream.events():
                await handle(event.key or b"", event.value or b"")

        return self.app.agent(self.topics[topic], name=f"omnijourney.stitch.{name}")(agent)

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        await self.topics[topic].send(key=key, value=value)

    async def _emit(self, records: list[Record], sends: list[Send]) -> None:
        for record in records:
            await self._send(*encode_record(record))
        for send in sends:
            await self._send(*encode_send(send, self.internal))

    async def _route(self, key: bytes, value: bytes) -> None:
        try:
            touch = to_touch(decode_touchpoint(value))
        except OmnijourneyError as exc:
            # touchpoints.valid holds what the ingest stage validated: this is a bug or a
            # foreign producer; the message is skipped with a log line, never retried forever.
            log.error("touchpoints.valid: undecodable message skipped (%s)", exc)
            return
        await self._emit([], [self.stitcher.route(touch)])

    async def _identifier(self, key: bytes, value: bytes) -> None:
        message = message_from_dict(orjson.loads(value))
        stored = self.identifiers.get(key)
        state = None if stored is None else self.stitcher.identifier_from_dict(orjson.loads(stored))
        name = key.decode()
        state, records, sends = self.stitcher.identifier_step(name, state, message)  # type: ignore[arg-type]
        await self._emit(records, sends)
        if state is not None:
            self.identifiers[key] = orjson.dumps(state.to_dict())

    async def _customer(self, key: bytes, value: bytes) -> None:
        message = message_from_dict(orjson.loads(value))
        stored = self.customers.get(key)
        state = None if stored is None else self.stitcher.customer_from_dict(orjson.loads(stored))
        state, records, sends = self.stitcher.customer_step(key.decode(), state, message)  # type: ignore[arg-type]
        await self._emit(records, sends)
        self.customers[key] = orjson.dumps(state.to_dict())


def register_stitching(
    app: faust.App, settings: Settings, stitcher: Stitcher | None = None
) -> Stages:
    """Add the route, identifier and customer agents (and their tables) to the app."""
    return Stages(app, settings, stitcher or Stitcher())
