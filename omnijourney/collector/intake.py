"""One collector request, decided without I/O: the records to produce, or why not.

All or nothing per request: when any event is refused nothing is produced, so a sender can
fix and resend the whole request without creating duplicates or gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from pydantic import BaseModel, ConfigDict, Field

from omnijourney.collector.keys import Grant
from omnijourney.exceptions import InvalidErasureRequest, InvalidTouchpoint
from schemas.channel import CHANNELS
from schemas.pii import PiiHasher
from schemas.privacy import ErasureRequest, build_request, erasure_input
from schemas.topics import Record, topic_for
from schemas.touchpoint import encode_input
from schemas.validation import decode_batch, partition_key, validate_batch

MAX_REPORTED_ERRORS: Final = 200
"""Field errors listed in one answer (a batch of 500 broken events would be a huge body)."""


class EventError(BaseModel):
    """Why one event (by its index in the request) or the body (index null) was refused."""

    model_config = ConfigDict(frozen=True)

    index: int | None = Field(description="Index of the event in the batch; null: the body.")
    loc: str = Field(description="Dotted field path inside the event, e.g. identities.0.value.")
    msg: str
    reason: str = Field(description="Machine-readable reason, e.g. missing_field.")


class ErrorBody(BaseModel):
    """Every non-2xx answer of the collector."""

    model_config = ConfigDict(frozen=True)

    error: str = Field(description="What went wrong, for humans.")
    reason: str = Field(description="Machine-readable: unauthorized, forbidden_channel, ...")
    errors: tuple[EventError, ...] = ()
    errors_truncated: bool = Field(default=False, description="More errors than listed.")


class AcceptedBody(BaseModel):
    """The 202 answer: every event of the request is on Kafka (committed)."""

    model_config = ConfigDict(frozen=True)

    accepted: int = Field(ge=0, description="Events accepted and committed to Kafka.")
    received_at: datetime = Field(description="The collector's receive time (UTC).")


class ErasureAcceptedBody(BaseModel):
    """The 202 answer of an erasure request: it is on Kafka (committed) under this id."""

    model_config = ConfigDict(frozen=True)

    request_id: str = Field(description="Follow the erasure by this id (its receipt has it).")
    requested_at: datetime = Field(description="The collector's receive time (UTC).")
    identifiers: int = Field(ge=1, description="Distinct identifiers named, after hashing.")
    suppress_future: bool


@dataclass(frozen=True, slots=True)
class Admission:
    """A request that may be produced: its records, one per event, in request order."""

    records: tuple[Record, ...]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request answered without producing anything."""

    status: int
    body: ErrorBody


def refusal(
    status: int, reason: str, error: str, errors: list[EventError] | None = None
) -> Refusal:
    """A refusal with at most MAX_REPORTED_ERRORS errors listed."""
    listed = tuple((errors or [])[:MAX_REPORTED_ERRORS])
    truncated = len(errors or []) > len(listed)
    return Refusal(
        status, ErrorBody(error=error, reason=reason, errors=listed, errors_truncated=truncated)
    )


def _forbidden(events: tuple[Any, ...], grant: Grant) -> list[EventError]:
    """Events naming a known channel the key may not write (unknown channels fail validation)."""
    allowed = ", ".join(sorted(grant.channels))
    found = []
    for index, event in enumerate(events):
        channel = event.get("channel") if isinstance(event, dict) else None
        if isinstance(channel, str) and channel in CHANNELS and channel not in grant.channels:
            message = (
                f"write key {grant.name!r} may not write channel {channel!r} (allowed: {allowed})"
            )
            found.append(EventError(index=index, loc="channel", msg=message, reason="forbidden"))
    return found


def admit(
    raw: bytes,
    *,
    grant: Grant,
    received_at: datetime,
    hasher: PiiHasher,
    max_events: int,
    max_bytes: int,
) -> Admission | Refusal:
    """Decode, authorize and validate a request body (all or nothing)."""
    try:
        batch = decode_batch(raw, max_events=max_events, max_bytes=max_bytes)
    except InvalidTouchpoint as exc:
        errors = [EventError(index=None, **error) for error in exc.errors]
        status = 413 if exc.reason == "too_large" else 400
        return refusal(status, exc.reason, errors[0].msg if errors else str(exc), errors)
    if not batch.events:
        empty = EventError(index=None, loc="batch", msg="no events", reason="empty_batch")
        return refusal(400, "empty_batch", "the request holds no events", [empty])
    forbidden = _forbidden(batch.events, grant)
    if forbidden:
        return refusal(
            403,
            "forbidden_channel",
            f"{len(forbidden)} of {len(batch.events)} events name a channel this key may not "
            "write; nothing was accepted",
            forbidden,
        )
    result = validate_batch(batch, received_at=received_at, hasher=hasher)
    if result.rejected:
        errors = [
            EventError(index=rejected.index, **error)
            for rejected in result.rejected
            for error in rejected.errors
        ]
        return refusal(
            422,
            "invalid_events",
            f"{len(result.rejected)} of {len(batch.events)} events are invalid; nothing was "
            "accepted (fix them and resend the whole request)",
            errors,
        )
    records = []
    for _, touchpoint in result.accepted:
        if touchpoint.channel not in grant.channels:  # checked above; never produce past a key
            return refusal(403, "forbidden_channel", "channel not allowed for this key")
        records.append(
            Record(
                topic_for(touchpoint.channel), partition_key(touchpoint), encode_input(touchpoint)
            )
        )
    return Admission(tuple(records), received_at)


MAX_ERASURE_BODY_BYTES: Final = 64 * 1024
"""Largest erasure request body (64 identifiers fit many times over)."""


def admit_erasure(
    raw: bytes,
    *,
    request_id: str,
    received_at: datetime,
    requested_by: str,
    hasher: PiiHasher,
) -> ErasureRequest | Refusal:
    """Decode and validate an erasure request body (clear email/phone hashed here)."""
    if len(raw) > MAX_ERASURE_BODY_BYTES:
        return refusal(
            413, "too_large", f"body exceeds the limit of {MAX_ERASURE_BODY_BYTES} bytes"
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        error = EventError(index=None, loc="", msg="the body is not JSON", reason="not_json")
        return refusal(400, "not_json", "the body is not JSON", [error])
    try:
        erasure = erasure_input(data, hasher)
        return build_request(
            erasure, request_id=request_id, requested_at=received_at, requested_by=requested_by
        )
    except InvalidErasureRequest as exc:
        errors = [EventError(index=None, **error) for error in exc.errors]
        return refusal(422, exc.reason, str(exc), errors)
