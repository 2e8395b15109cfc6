"""The edge's validation: raw bytes in, a validated Touchpoint or one InvalidTouchpoint out.

Pure: no I/O, no clock (received_at is injected), no Kafka. The collector and the ingest
agent both call `parse_touchpoint` / `parse_batch`; failures are classified for dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast, get_args

import orjson
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from omnijourney.exceptions import FieldError, InvalidTouchpoint, PoisonMessage, TransientError
from schemas.channel import CHANNELS
from schemas.clock import correct_skew, require_utc
from schemas.envelope import TouchpointBase, schema_major
from schemas.fields import PII_CONTEXT_KEY
from schemas.identity import identifier_key, strongest_identifier
from schemas.limits import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from schemas.pii import PiiHasher, scrub_text
from schemas.touchpoint import MODELS, Touchpoint, model_for

__all__ = [
    "REASONS",
    "Batch",
    "BatchResult",
    "Classification",
    "Reason",
    "Rejected",
    "classify",
    "correct_skew",
    "decode_batch",
    "decode_touchpoint",
    "field_errors",
    "parse_batch",
    "parse_touchpoint",
    "partition_key",
    "validate_batch",
    "validate_touchpoint",
]

Reason = Literal[
    "too_large",
    "not_json",
    "not_object",
    "schema_version",
    "unknown_channel",
    "unknown_type",
    "no_identifier",
    "blocked_identifier",
    "clear_pii",
    "invalid_pii",
    "naive_timestamp",
    "invalid_timestamp",
    "missing_field",
    "unknown_field",
    "wrong_types",
    "invalid_value",
    "rejected",
    "processing_error",
]
"""Why a message was refused; listed by precedence (the first that applies names the event)."""

REASONS: Final[tuple[Reason, ...]] = get_args(Reason)
_RANK: Final = {reason: rank for rank, reason in enumerate(REASONS)}

_SERVER_FIELDS: Final = frozenset({"received_at", "device_occurred_at"})
"""Fields only the edge sets; a producer's values are ignored."""

_REASON_OF_TYPE: Final[dict[str, Reason]] = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "timezone_aware": "naive_timestamp",
    "wrong_type": "wrong_types",
    "model_type": "wrong_types",
    "model_attributes_type": "wrong_types",
    "int_from_float": "wrong_types",
}
_MESSAGE_OF_TYPE: Final = {
    "missing": "field required",
    "extra_forbidden": "unknown field for this channel and type; retailer-specific data goes "
    "in properties.custom",
    "timezone_aware": "timestamp has no timezone: send an offset such as 'Z' or '+02:00' "
    "(naive timestamps are refused)",
}


def _invalid(reason: Reason, loc: str, msg: str) -> InvalidTouchpoint:
    return InvalidTouchpoint(reason, [{"loc": loc, "msg": msg, "reason": reason}])


def _reason_of(error_type: str) -> Reason:
    if error_type in _RANK:
        return error_type
    if error_type in _REASON_OF_TYPE:
        return _REASON_OF_TYPE[error_type]
    if error_type.endswith(("_type", "_parsing")):
        return "wrong_types"
    return "invalid_value"


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic errors as `{"loc": "identities.0.value", "msg": ..., "reason": ...}` (no input)."""
    errors: list[FieldError] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"]]
        field = (error.get("ctx") or {}).get("field")
        if isinstance(field, str):
            loc.extend(field.split("."))  # a model-level check naming the field it is about
        errors.append(
            {
                "loc": ".".join(loc),
                "msg": _MESSAGE_OF_TYPE.get(error["type"], error["msg"]),
                "reason": _reason_of(error["type"]),
            }
        )
    return errors


def primary_reason(errors: list[FieldError]) -> Reason:
    """The reason that names a refused event: the highest-precedence one among its errors."""
    reasons = [e["reason"] for e in errors if e["reason"] in _RANK]
    return min(reasons, key=_RANK.__getitem__, default="invalid_value")


def _quoted(value: str) -> str:
    """A producer's value fit to echo in an error: short and without PII."""
    return repr(scrub_text(value[:40], None))


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _model(event: dict[str, Any]) -> type[TouchpointBase]:
    """The model of an event, after checking its version, channel and type."""
    if "schema_version" in event:
        try:
            schema_major(event["schema_version"])
        except PydanticCustomError as exc:
            raise _invalid("schema_version", "schema_version", exc.message()) from None
    for field in ("channel", "type"):
        if field not in event:
            raise _invalid("missing_field", field, "field required")
        if not isinstance(event[field], str):
            raise _invalid("wrong_types", field, f"{field} must be a string")
    channel, type_ = event["channel"], event["type"]
    if channel not in MODELS:
        raise _invalid(
            "unknown_channel",
            "channel",
            f"unknown channel {_quoted(channel)}; expected one of {', '.join(CHANNELS)}",
        )
    model = model_for(channel, type_)
    if model is None:
        known = ", ".join(MODELS[channel])
        raise _invalid(
            "unknown_type",
            "type",
            f"unknown type {_quoted(type_)} for channel {channel}; expected one of {known}",
        )
    return model


def _no_usable_identifier(errors: list[FieldError], event: dict[str, Any]) -> list[FieldError]:
    """Add the event-level no_identifier error when every identifier was refused."""
    identities = event.get("identities")
    if not isinstance(identities, list) or not identities:
        return errors
    refused = {
        parts[1]
        for e in errors
        if (parts := e["loc"].split("."))[0] == "identities" and len(parts) > 1
    }
    if len(refused) < len(identities) or any(e["loc"] == "identities" for e in errors):
        return errors
    message = "no usable identifier: every identifier of the event was refused"
    return [{"loc": "identities", "msg": message, "reason": "no_identifier"}, *errors]


def _validate(
    model: type[TouchpointBase], data: dict[str, Any], context: dict[str, Any] | None
) -> Touchpoint:
    try:
        touchpoint = model.model_validate(data, context=context)
    except ValidationError as exc:
        # `from None`: the pydantic error holds the input, clear PII included; never chain it
        errors = _no_usable_identifier(field_errors(exc), data)
        raise InvalidTouchpoint(primary_reason(errors), errors) from None
    return cast(Touchpoint, touchpoint)


def validate_touchpoint(event: object, *, received_at: datetime, hasher: PiiHasher) -> Touchpoint:
    """Validate one decoded producer event at the edge: hash PII, stamp and skew-correct it."""
    received = require_utc(received_at, "received_at")
    if not isinstance(event, dict):
        raise _invalid("not_object", "", f"a touchpoint is a JSON object, not {_json_type(event)}")
    model = _model(event)
    data = {key: value for key, value in event.items() if key not in _SERVER_FIELDS}
    data["received_at"] = received
    return _validate(model, data, {PII_CONTEXT_KEY: hasher})


def _decode_json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _invalid("not_json", "", f"not JSON: {exc}") from None


def parse_touchpoint(raw: bytes, *, received_at: datetime, hasher: PiiHasher) -> Touchpoint:
    """Validate one raw producer message (JSON bytes) into a Touchpoint; InvalidTouchpoint if not.

    Clear `email` / `phone` identifiers are normalized and keyed-hashed, emails and phone
    numbers in free text are scrubbed, `received_at` is set and `occurred_at` corrected for
    the client's clock skew when `sent_at` is present.
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise _invalid(
            "too_large", "", f"event of {len(raw)} bytes exceeds the limit of {MAX_EVENT_BYTES}"
        )
    return validate_touchpoint(_decode_json(raw), received_at=received_at, hasher=hasher)


def decode_touchpoint(raw: bytes) -> Touchpoint:
    """Read a validated touchpoint back (from a topic past the edge): no hashing happens here."""
    event = _decode_json(raw)
    if not isinstance(event, dict):
        raise _invalid("not_object", "", f"a touchpoint is a JSON object, not {_json_type(event)}")
    return _validate(_model(event), event, None)


def partition_key(touchpoint: TouchpointBase) -> bytes:
    """Kafka key of a touchpoint: its strongest identifier."""
    return identifier_key(strongest_identifier(touchpoint.identities))


@dataclass(frozen=True, slots=True)
class Rejected:
    """One refused event of a batch, by its index in the batch."""

    index: int
    reason: Reason
    errors: tuple[FieldError, ...]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The valid touchpoints of a batch (with their indexes) and the refused ones."""

    accepted: tuple[tuple[int, Touchpoint], ...]
    rejected: tuple[Rejected, ...]


def _batch_events(body: object) -> tuple[list[Any], object | None]:
    """The events of a request body and its batch-level sent_at (Segment-style batches)."""
    if isinstance(body, list):
        return body, None
    if not isinstance(body, dict):
        raise _invalid("not_object", "", f"expected an event or a batch, not {_json_type(body)}")
    if "batch" not in body:
        return [body], None
    for key in body:
        if key not in ("batch", "sent_at"):
            raise _invalid("unknown_field", str(key)[:40], "a batch holds only batch and sent_at")
    if not isinstance(body["batch"], list):
        raise _invalid("wrong_types", "batch", "batch must be an array of events")
    return body["batch"], body.get("sent_at")


@dataclass(frozen=True, slots=True)
class Batch:
    """The decoded events of a request body and its batch-level sent_at (not validated yet)."""

    events: tuple[Any, ...]
    sent_at: object | None = None


def decode_batch(
    raw: bytes, *, max_events: int = MAX_BATCH_EVENTS, max_bytes: int = MAX_BATCH_BYTES
) -> Batch:
    """Decode a request body: one event, an array of events, or {"batch": [...], "sent_at"}.

    Body-level problems (too large, not JSON, not a batch, too many events) raise
    InvalidTouchpoint; the limits can be tightened below the contract's, never raised.
    """
    max_bytes, max_events = min(max_bytes, MAX_BATCH_BYTES), min(max_events, MAX_BATCH_EVENTS)
    if len(raw) > max_bytes:
        raise _invalid(
            "too_large", "", f"body of {len(raw)} bytes exceeds the limit of {max_bytes}"
        )
    events, sent_at = _batch_events(_decode_json(raw))
    if len(events) > max_events:
        raise _invalid(
            "too_large", "batch", f"{len(events)} events exceed the limit of {max_events}"
        )
    return Batch(tuple(events), sent_at)


def validate_batch(batch: Batch, *, received_at: datetime, hasher: PiiHasher) -> BatchResult:
    """Validate every event of a decoded batch; refusals are returned by index, never raised.

    A batch-level sent_at applies to events without their own.
    """
    accepted: list[tuple[int, Touchpoint]] = []
    rejected: list[Rejected] = []
    for index, item in enumerate(batch.events):
        event = item
        if batch.sent_at is not None and isinstance(item, dict) and "sent_at" not in item:
            event = {**item, "sent_at": batch.sent_at}
        try:
            size = len(orjson.dumps(event))
            if size > MAX_EVENT_BYTES:
                raise _invalid(
                    "too_large", "", f"event of {size} bytes exceeds the limit of {MAX_EVENT_BYTES}"
                )
            accepted.append(
                (index, validate_touchpoint(event, received_at=received_at, hasher=hasher))
            )
        except InvalidTouchpoint as exc:
            rejected.append(Rejected(index, cast(Reason, exc.reason), exc.errors))
    return BatchResult(tuple(accepted), tuple(rejected))


def parse_batch(raw: bytes, *, received_at: datetime, hasher: PiiHasher) -> BatchResult:
    """Validate a request body: one event, an array of events, or {"batch": [...], "sent_at"}.

    Body-level problems (too large, not JSON, too many events) raise InvalidTouchpoint;
    event-level ones are returned per index. A batch-level sent_at applies to events
    without their own.
    """
    return validate_batch(decode_batch(raw), received_at=received_at, hasher=hasher)


@dataclass(frozen=True, slots=True)
class Classification:
    """Why a message becomes a dead letter."""

    reason: Reason
    errors: tuple[FieldError, ...]
    text: str


def classify(exc: BaseException) -> Classification:
    """The dead-letter reason of a failure; transient failures are re-raised, never classified.

    A broker or downstream outage (TransientError) and interruptions (anything not an
    Exception, e.g. cancellation) must be retried, so they propagate from here.
    """
    if not isinstance(exc, Exception) or isinstance(exc, TransientError):
        raise exc
    if isinstance(exc, InvalidTouchpoint):
        reason = exc.reason if exc.reason in _RANK else "rejected"
        errors = tuple(
            FieldError(loc=e["loc"], msg=e["msg"], reason=e["reason"])
            if e["reason"] in _RANK
            else FieldError(loc=e["loc"], msg=e["msg"], reason="rejected")
            for e in exc.errors
        )
        return Classification(reason, errors, _text(exc))
    if isinstance(exc, PoisonMessage):
        return Classification("rejected", (), _text(exc))
    return Classification("processing_error", (), f"{type(exc).__name__}: {_text(exc)}")


def _text(exc: Exception) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose message cannot be rendered>"
