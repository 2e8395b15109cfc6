"""Dead letters: what could not be processed, why, where it came from, and its bytes.

Pure: the dead letter is built from the failing message and its exception; the ingest
agent only produces it to `touchpoints.deadletter` and moves on.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from omnijourney.exceptions import InvalidPii
from schemas.clock import require_utc
from schemas.fields import UtcDatetime
from schemas.limits import MAX_DEADLETTER_ORIGINAL_BYTES
from schemas.pii import EMAIL_MARK, PHONE_MARK, PiiHasher
from schemas.topics import DEADLETTER_TOPIC, Record
from schemas.touchpoint import Touchpoint
from schemas.validation import Reason, classify, parse_touchpoint

STAGE_COLLECTOR: Final = "collector"
STAGE_INGEST: Final = "ingest"

_NAMESPACE: Final = uuid.UUID("6f1d8a4e-3c2b-5e7f-9a1d-0b4c6e8f2a3d")
_HEX_DIGEST: Final = re.compile(r"[0-9a-fA-F]{64}")
_NOT_JSON: Final = object()

Stage = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""The pipeline stage that refused the message (collector, ingest, resolve...)."""


class SourcePosition(BaseModel):
    """Where the message was read from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]


class DeadLetterError(BaseModel):
    """One field error of the refused message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    loc: str
    msg: str
    reason: Reason


class DeadLetter(BaseModel):
    """A message that could not be processed, kept with the reason and its original bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dead_letter_id: str = Field(description="Deterministic: one id per source message.")
    version: Literal[1] = 1
    reason: Reason
    stage: Stage
    errors: tuple[DeadLetterError, ...] = ()
    error: str = Field(description="Human-readable summary (PII scrubbed).")
    source: SourcePosition | None = None
    received_at: UtcDatetime
    channel: str | None = Field(default=None, description="The message's channel, if readable.")
    event_id: str | None = Field(default=None, description="The message's event_id, if readable.")
    original_b64: str = Field(description="Base64 of the original bytes (PII redacted).")
    original_size: int = Field(ge=0, description="Size of the original message in bytes.")
    original_sha256: str = Field(description="SHA-256 of the original message as received.")
    original_truncated: bool = Field(
        default=False, description="Only the first MAX_DEADLETTER_ORIGINAL_BYTES are kept."
    )
    original_redacted: bool = Field(
        default=False, description="Clear emails/phones were hashed or masked in the copy."
    )

    def original(self) -> bytes:
        """The kept (redacted, maybe truncated) original bytes."""
        return base64.b64decode(self.original_b64)


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _redact_identity(item: dict[str, Any], hasher: PiiHasher) -> dict[str, Any]:
    kind, value = item.get("kind"), item.get("value")
    if kind not in ("email", "phone") or not isinstance(value, str):
        return {key: _redact_json(val, hasher) for key, val in item.items()}
    try:
        hashed = hasher.email_hash(value) if kind == "email" else hasher.phone_hash(value)
    except InvalidPii:
        return {**item, "value": EMAIL_MARK if kind == "email" else PHONE_MARK}
    return {**item, "kind": f"{kind}_hash", "value": hashed}


def _redact_json(value: Any, hasher: PiiHasher) -> Any:
    if isinstance(value, str):
        return value if _HEX_DIGEST.fullmatch(value) else hasher.scrub(value)
    if isinstance(value, list):
        return [_redact_json(item, hasher) for item in value]
    if isinstance(value, dict):
        if "kind" in value and "value" in value:
            return _redact_identity(value, hasher)
        return {hasher.scrub(key): _redact_json(val, hasher) for key, val in value.items()}
    return value


def redact_original(raw: bytes, hasher: PiiHasher) -> tuple[bytes, bool]:
    """`raw` with clear emails/phones hashed or masked, and whether anything changed.

    JSON is walked (clear identifiers become their hashes); anything else is scrubbed as
    text, byte for byte outside the replaced spans.
    """
    parsed = _loads(raw)
    if parsed is not _NOT_JSON:
        try:
            cleaned = _redact_json(parsed, hasher)
            if cleaned == parsed:
                return raw, False
            return orjson.dumps(cleaned), True
        except RecursionError:
            pass  # absurdly deep JSON: scrub it as text below
    text = raw.decode("utf-8", "surrogateescape")
    scrubbed = hasher.scrub(text)
    if scrubbed == text:
        return raw, False
    return scrubbed.encode("utf-8", "surrogateescape"), True


def _peek(raw: bytes, field: str, hasher: PiiHasher) -> str | None:
    """A short string field of the message, if it is a JSON object that has one."""
    parsed = _loads(raw)
    value = parsed.get(field) if isinstance(parsed, dict) else None
    if not isinstance(value, str) or not value.isprintable() or len(value) > 128:
        return None
    return hasher.scrub(value)


def dead_letter(
    raw: bytes,
    exc: BaseException,
    *,
    stage: str,
    received_at: datetime,
    hasher: PiiHasher,
    source: SourcePosition | None = None,
) -> DeadLetter:
    """The dead letter of `raw`, refused with `exc`; transient failures are re-raised instead."""
    failure = classify(exc)
    redacted, changed = redact_original(raw, hasher)
    digest = hashlib.sha256(raw).hexdigest()
    if source is not None:
        name = f"{source.topic}/{source.partition}/{source.offset}"
    else:
        name = f"{stage}/{digest}/{received_at.isoformat()}"
    return DeadLetter(
        dead_letter_id=str(uuid.uuid5(_NAMESPACE, name)),
        reason=failure.reason,
        stage=stage,
        errors=tuple(DeadLetterError.model_validate(error) for error in failure.errors),
        error=hasher.scrub(failure.text)[:2000],
        source=source,
        received_at=received_at,
        channel=_peek(raw, "channel", hasher),
        event_id=_peek(raw, "event_id", hasher),
        original_b64=base64.b64encode(redacted[:MAX_DEADLETTER_ORIGINAL_BYTES]).decode("ascii"),
        original_size=len(raw),
        original_sha256=digest,
        original_truncated=len(redacted) > MAX_DEADLETTER_ORIGINAL_BYTES,
        original_redacted=changed,
    )


def triage(
    raw: bytes,
    *,
    received_at: datetime,
    hasher: PiiHasher,
    source: SourcePosition | None = None,
    stage: str = STAGE_INGEST,
) -> Touchpoint | DeadLetter:
    """The ingest step for one message: its Touchpoint, or its DeadLetter (never an exception).

    Transient failures (TransientError, cancellation) propagate so the caller retries.
    """
    received = require_utc(received_at, "received_at")  # a caller's bug, not the message's
    try:
        return parse_touchpoint(raw, received_at=received, hasher=hasher)
    except Exception as exc:
        # any failure of this one message, even a bug, must not stall the partition
        return dead_letter(
            raw, exc, stage=stage, received_at=received, hasher=hasher, source=source
        )


def encode_dead_letter(letter: DeadLetter) -> bytes:
    """The dead letter as JSON bytes."""
    return orjson.dumps(letter.model_dump(mode="json", exclude_none=True))


def dead_letter_record(letter: DeadLetter) -> Record:
    """(topic, key, value) of a dead letter; keyed by source partition to keep its order."""
    if letter.source is not None:
        key = f"{letter.source.topic}:{letter.source.partition}".encode()
    else:
        key = (letter.channel or letter.stage).encode()
    return Record(DEADLETTER_TOPIC, key, encode_dead_letter(letter))
