"""For Python producers writing to Kafka directly: build, hash, validate, encode, send.

`Emitter.record` is pure (the clock is passed in); `send` takes a started aiokafka
producer and never creates one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from schemas.pii import PiiHasher
from schemas.topics import Record, topic_for
from schemas.touchpoint import Touchpoint, encode_input
from schemas.validation import partition_key, validate_touchpoint


class Producer(Protocol):
    """The part of aiokafka's AIOKafkaProducer the emitter uses."""

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> Any:
        """Produce one message and wait for the broker's acknowledgement."""


class Emitter:
    """Turns a producer's event into a Kafka record holding no clear email or phone."""

    __slots__ = ("hasher",)

    def __init__(self, hasher: PiiHasher) -> None:
        self.hasher = hasher

    def touchpoint(self, event: Mapping[str, Any], *, now: datetime) -> Touchpoint:
        """Validate an event as the edge would (InvalidTouchpoint when it is not valid).

        Missing `event_id` gets a fresh uuid4 and missing `sent_at` is `now`, the
        producer's clock at send time, so the ingest stage can correct its skew.
        """
        data = dict(event)
        data.setdefault("event_id", str(uuid.uuid4()))
        data.setdefault("sent_at", now)
        return validate_touchpoint(data, received_at=now, hasher=self.hasher)

    def record(self, event: Mapping[str, Any], *, now: datetime) -> Record:
        """(topic, key, value) for an event: its channel topic, strongest identifier, JSON."""
        touchpoint = self.touchpoint(event, now=now)
        return Record(
            topic_for(touchpoint.channel), partition_key(touchpoint), encode_input(touchpoint)
        )


async def send(producer: Producer, record: Record) -> None:
    """Produce one record and wait until the broker has acknowledged it."""
    await producer.send_and_wait(record.topic, value=record.value, key=record.key)
