"""Where one raw message goes: validated to `touchpoints.valid`, refused to the dead letters.

Pure: the ingest agent hands in the bytes, where they came from and the receive time, and
produces the record it gets back. Nothing here raises for bad input, so a poison message
can never stall a partition; only transient faults (and cancellation) propagate.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

from omnijourney.exceptions import InvalidTouchpoint
from schemas.clock import require_utc
from schemas.deadletter import (
    STAGE_INGEST,
    DeadLetter,
    SourcePosition,
    dead_letter,
    dead_letter_record,
    triage,
)
from schemas.limits import MAX_EVENT_TIME, MIN_EVENT_TIME
from schemas.pii import PiiHasher
from schemas.topics import CHANNEL_TOPICS, VALID_TOPIC, Record
from schemas.touchpoint import encode_touchpoint
from schemas.validation import partition_key

LOG_APPEND_TIME: Final = 1
"""Kafka's timestamp type of a record stamped by the broker (0 is the producer's CreateTime)."""

_CHANNEL_OF_TOPIC: Final = {topic: channel for channel, topic in CHANNEL_TOPICS.items()}
_FALLBACK_NAMESPACE: Final = uuid.UUID("0d4b7f3e-9a61-4c2e-8b5f-7e3a1c9d2f60")


def received_at(
    timestamp_s: float | None, timestamp_type: int | None, *, now: datetime
) -> datetime:
    """When omnijourney received a raw message: the broker's append time, else `now`.

    A producer's CreateTime is never used: it carries the very clock skew the edge corrects.
    """
    now = require_utc(now, "now")
    if timestamp_type != LOG_APPEND_TIME or timestamp_s is None:
        return now
    try:
        stamped = datetime.fromtimestamp(0, UTC) + timedelta(seconds=timestamp_s)
    except (OverflowError, ValueError):
        return now
    return stamped if MIN_EVENT_TIME <= stamped < MAX_EVENT_TIME else now


def route(
    raw: bytes | None,
    *,
    source: SourcePosition,
    received: datetime,
    hasher: PiiHasher,
) -> Record:
    """The record a raw message becomes: its validated touchpoint, or its dead letter."""
    payload = b"" if raw is None else raw  # a tombstone is refused like an empty message
    try:
        outcome = triage(payload, received_at=received, hasher=hasher, source=source)
        if isinstance(outcome, DeadLetter):
            return dead_letter_record(outcome)
        _check_topic(outcome.channel, source.topic)
        return Record(VALID_TOPIC, partition_key(outcome), encode_touchpoint(outcome))
    except Exception as exc:  # wrong topic, or a bug on this one message: keep it, move on
        return _last_resort(payload, exc, source=source, received=received, hasher=hasher)


def _check_topic(channel: str, topic: str) -> None:
    """A channel topic carries its own channel's events only (Kafka ACLs authorize by topic)."""
    expected = _CHANNEL_OF_TOPIC.get(topic)
    if expected is not None and channel != expected:
        message = f"a {channel} event does not belong on {topic} (only {expected} events do)"
        raise InvalidTouchpoint(
            "invalid_value", [{"loc": "channel", "msg": message, "reason": "invalid_value"}]
        )


def _last_resort(
    raw: bytes, exc: Exception, *, source: SourcePosition, received: datetime, hasher: PiiHasher
) -> Record:
    """A dead letter for a failure outside validation; bare when even that cannot be built."""
    try:
        letter = dead_letter(
            raw, exc, stage=STAGE_INGEST, received_at=received, hasher=hasher, source=source
        )
    except Exception as inner:
        # The original is left out: it could not be redacted, and clear PII must not pass.
        letter = DeadLetter(
            dead_letter_id=str(
                uuid.uuid5(
                    _FALLBACK_NAMESPACE, f"{source.topic}/{source.partition}/{source.offset}"
                )
            ),
            reason="processing_error",
            stage=STAGE_INGEST,
            error=f"dead letter could not be built: {type(exc).__name__}, {type(inner).__name__}",
            source=source,
            received_at=received,
            original_b64=base64.b64encode(b"").decode("ascii"),
            original_size=len(raw),
            original_sha256=hashlib.sha256(raw).hexdigest(),
            original_truncated=True,
        )
    return dead_letter_record(letter)
