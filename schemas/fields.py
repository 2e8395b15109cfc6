"""Field types shared by every touchpoint model: timestamps, codes, free text, custom bags."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from schemas.limits import (
    MAX_CODE_CHARS,
    MAX_CUSTOM_PROPERTIES,
    MAX_EVENT_TIME,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
    MIN_EVENT_TIME,
)
from schemas.pii import PiiHasher, looks_like_email, scrub_text

PII_CONTEXT_KEY: Final = "pii"
"""Validation-context key of the edge's PiiHasher (present only at the edge)."""


def edge_hasher(info: ValidationInfo) -> PiiHasher | None:
    """The PiiHasher of the edge validating this input, or None past the edge."""
    context = info.context
    if isinstance(context, dict):
        hasher = context.get(PII_CONTEXT_KEY)
        if isinstance(hasher, PiiHasher):
            return hasher
    return None


def _utc(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    if not MIN_EVENT_TIME <= value < MAX_EVENT_TIME:
        raise PydanticCustomError(
            "invalid_timestamp",
            "timestamp outside 2000-01-01 .. 2100-01-01 (is the device clock set?)",
        )
    return value


_DATETIME_IN: Final = {
    "anyOf": [
        {
            "type": "string",
            "format": "date-time",
            "pattern": "(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})$",
            "description": "RFC 3339 with an offset; naive timestamps are refused",
        },
        {"type": "integer", "description": "Unix epoch in seconds or milliseconds"},
    ]
}
_DATETIME_OUT: Final = {"type": "string", "format": "date-time"}

UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_utc),
    WithJsonSchema(_DATETIME_IN, mode="validation"),
    WithJsonSchema(_DATETIME_OUT, mode="serialization"),
]
"""A timezone-aware timestamp (naive is refused), normalized to UTC."""


def _code(value: str) -> str:
    if not value.isprintable():
        raise PydanticCustomError("invalid_value", "control characters are not allowed in ids")
    if looks_like_email(value):
        raise PydanticCustomError("clear_pii", "looks like a clear email address; ids carry no PII")
    return value


Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CODE_CHARS),
    AfterValidator(_code),
]
"""An id from a producer's system (order, product, store, campaign...)."""

Slug = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$"),
]
"""A short lower-case code from an open vocabulary (a call reason, a payment method)."""


class _Scrubbed:
    """After-validator removing emails and phone numbers from free text (edge region if known)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def __call__(self, value: str, info: ValidationInfo) -> str:
        hasher = edge_hasher(info)
        scrubbed = scrub_text(value, hasher.default_region if hasher else None)
        # a marker can be a character longer than what it replaced
        return scrubbed[: self.max_chars]


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_NAME_CHARS),
    AfterValidator(_Scrubbed(MAX_NAME_CHARS)),
]
"""A short human-readable label (product name, page title); PII scrubbed."""

Text = Annotated[
    str,
    StringConstraints(max_length=MAX_TEXT_CHARS),
    AfterValidator(_Scrubbed(MAX_TEXT_CHARS)),
]
"""Free text (a search query); emails and phone numbers replaced by markers."""

Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_URL_CHARS),
    AfterValidator(_Scrubbed(MAX_URL_CHARS)),
]
"""A URL or app route; emails and phone numbers in it replaced by markers."""

CustomKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
CustomScalar = str | int | float | bool | None


def _custom_value(value: object, info: ValidationInfo) -> CustomScalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("invalid_value", "custom numbers must be finite")
        return value
    if isinstance(value, int):
        if abs(value) >= 2**63:
            raise PydanticCustomError("invalid_value", "custom integers must fit in 64 bits")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise PydanticCustomError(
                "invalid_value", f"custom strings hold at most {MAX_TEXT_CHARS} characters"
            )
        return _Scrubbed(MAX_TEXT_CHARS)(value, info)
    raise PydanticCustomError(
        "wrong_type", "custom values must be a string, number, boolean or null (no nesting)"
    )


CustomValue = Annotated[
    CustomScalar,
    PlainValidator(_custom_value),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]


class Properties(BaseModel):
    """Base of every channel's properties: closed schema plus a bounded `custom` bag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    custom: (
        Annotated[dict[CustomKey, CustomValue], Field(max_length=MAX_CUSTOM_PROPERTIES)] | None
    ) = Field(default=None, description="Retailer-specific scalars; PII in strings is scrubbed.")
