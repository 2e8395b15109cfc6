"""The envelope every touchpoint shares, whatever its channel."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.channel import Channel
from schemas.clock import correct_skew
from schemas.fields import Properties, UtcDatetime
from schemas.identity import Identifier, IdentifierKind
from schemas.limits import MAX_IDENTITIES, MIN_EVENT_TIME, SCHEMA_VERSION
from schemas.pii import looks_like_email
from schemas.placeholders import placeholder_reason

_VERSION_TEXT: Final = re.compile(r"^\s*(\d{1,6})(?:\.\d{1,6}){0,2}\s*$")


def schema_major(value: object) -> int:
    """The major version a `schema_version` value names; a PydanticCustomError if unusable."""
    if isinstance(value, int) and not isinstance(value, bool):
        major = value
    elif isinstance(value, str) and (match := _VERSION_TEXT.match(value)):
        major = int(match.group(1))
    else:
        raise PydanticCustomError(
            "schema_version", "schema_version must be a major version number like 1 (or '1.2')"
        )
    if major > SCHEMA_VERSION:
        raise PydanticCustomError(
            "schema_version",
            "schema_version {major} is newer than this omnijourney understands (up to "
            "{current}); upgrade the pipeline before producing it",
            {"major": major, "current": SCHEMA_VERSION},
        )
    if major < 1:
        raise PydanticCustomError(
            "schema_version",
            "schema_version {major} does not exist (the first is 1)",
            {"major": major},
        )
    return major


SchemaVersion = Annotated[
    int,
    PlainValidator(schema_major),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": SCHEMA_VERSION},
                {"type": "string", "pattern": rf"^{SCHEMA_VERSION}(\.[0-9]+){{0,2}}$"},
            ],
            "default": SCHEMA_VERSION,
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "integer", "const": SCHEMA_VERSION}, mode="serialization"),
]
"""Major version of the contract (a 'MAJOR.MINOR' string is read as its major)."""


def _event_id(value: str) -> str:
    reason = placeholder_reason(value)
    if reason is not None:
        # a placeholder id would make deduplication drop real events as repeats
        raise PydanticCustomError("invalid_value", "{detail}", {"detail": reason})
    if not value.isprintable():
        raise PydanticCustomError("invalid_value", "control characters are not allowed")
    if looks_like_email(value):
        raise PydanticCustomError("clear_pii", "looks like a clear email address")
    return value


EventId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(_event_id),
]
"""Producer-assigned unique id of the event (the dedupe key): a uuid or similar."""


class Consent(BaseModel):
    """What the person agreed to; None means the producer did not say."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    analytics: bool | None = None
    personalization: bool | None = None
    marketing: bool | None = None


class TouchpointBase(BaseModel):
    """Fields every touchpoint has; channel models narrow `channel`, `type` and `properties`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    required_identifiers: ClassVar[frozenset[IdentifierKind]] = frozenset()
    """When set, the event needs at least one identifier of these kinds."""

    event_id: EventId
    schema_version: SchemaVersion = SCHEMA_VERSION
    channel: Channel
    type: str
    occurred_at: UtcDatetime = Field(
        description="Event time. At the edge: the producer's clock; validated: corrected for "
        "clock skew (see device_occurred_at)."
    )
    device_occurred_at: UtcDatetime | None = Field(
        default=None,
        description="Set by the edge: the producer's occurred_at when skew correction moved it.",
    )
    sent_at: UtcDatetime | None = Field(
        default=None, description="Producer's clock when it sent the event (for skew correction)."
    )
    received_at: UtcDatetime = Field(description="Set by the edge: when omnijourney received it.")
    identities: Annotated[tuple[Identifier, ...], Field(max_length=MAX_IDENTITIES)]
    consent: Consent = Field(default_factory=Consent)
    properties: Properties

    @field_validator("identities")
    @classmethod
    def _usable_identities(cls, identities: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
        unique = tuple(dict.fromkeys(identities))
        if not unique:
            raise PydanticCustomError(
                "no_identifier",
                "no usable identifier: send at least one of anonymous_id, device_id, "
                "customer_id, loyalty_id, email (or email_hash), phone (or phone_hash)",
            )
        required = cls.required_identifiers
        if required and not any(ident.kind in required for ident in unique):
            raise PydanticCustomError(
                "no_identifier",
                "this event type needs an identifier of kind {kinds}",
                {"kinds": " or ".join(sorted(required))},
            )
        return unique

    @model_validator(mode="after")
    def _event_time(self) -> Self:
        # Idempotent: the device time is kept, so validating a validated touchpoint again
        # recomputes the same corrected event time.
        device = self.device_occurred_at or self.occurred_at
        event_time = correct_skew(device, received_at=self.received_at, sent_at=self.sent_at)
        if event_time < MIN_EVENT_TIME:
            raise PydanticCustomError(
                "invalid_timestamp",
                "sent_at and occurred_at put the event before 2000-01-01 (is a clock unset?)",
                {"field": "sent_at"},
            )
        # frozen model: set the derived fields once, during validation
        object.__setattr__(self, "occurred_at", event_time)
        object.__setattr__(self, "device_occurred_at", None if event_time == device else device)
        self.__pydantic_fields_set__.add("device_occurred_at")
        return self
