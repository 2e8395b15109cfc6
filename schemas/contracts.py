"""The public output contract: topic names and the records the stitching core publishes on them.

The pipeline publishes every record of the core (`streams.core.records`) as the JSON of its
`to_dict()` (orjson), keyed by customer id, on one of the public topics below. These models
read those records: field names exactly as `to_dict` writes them, unknown fields ignored (a
newer minor version may add some), `record_type` and the major `schema_version` checked.
Consumers in other languages get the same contract as JSON Schema (`omnijourney schemas export`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from omnijourney.exceptions import FieldError, InvalidRecord
from schemas.topics import DEADLETTER_TOPIC, Record
from schemas.validation import field_errors, primary_reason

__all__ = [
    "CONTRACT_VERSION",
    "DEADLETTER_TOPIC",
    "JOURNEYS_TOPIC",
    "LINKS_TOPIC",
    "MERGES_TOPIC",
    "PERSONALIZATION_TOPIC",
    "PUBLIC_TOPICS",
    "RECORD_MODELS",
    "SESSIONS_TOPIC",
    "SINK_TOPICS",
    "TOPIC_OF_RECORD",
    "TOUCHPOINTS_TOPIC",
    "AnonymousTouchpointRecord",
    "EnrichedTouchpointRecord",
    "IdentityLinkRecord",
    "JourneyUpdateRecord",
    "LinkRejectionRecord",
    "MergeRecord",
    "PublicRecord",
    "SessionUpdateRecord",
    "decode_personalization",
    "decode_record",
    "public_record",
    "record_from",
    "record_key",
]

CONTRACT_VERSION: Final = 1
"""Major version of the output records; a record of a newer major is refused."""

TOUCHPOINTS_TOPIC: Final = "journeys.touchpoints"
"""Every touchpoint with its customer, session and journey (`enriched_touchpoint`)."""
SESSIONS_TOPIC: Final = "journeys.sessions"
"""Session state after each change (`session_update`)."""
JOURNEYS_TOPIC: Final = "journeys.updates"
"""Journey state after each change (`journey_update`)."""
LINKS_TOPIC: Final = "identity.links"
"""An identifier joined a customer (`identity_link`)."""
MERGES_TOPIC: Final = "identity.merges"
"""Two customers became one (`merge`), or a link was refused by a rule (`link_rejection`)."""
PERSONALIZATION_TOPIC: Final = "journeys.personalization"
"""Journey state for personalization (`journey_update`, the contract of journeys.updates), only
while the customer's latest consent allows personalization; compacted, keyed by customer id; a
tombstone (no value) when the consent is withdrawn or the customer merged into another."""

TOPIC_OF_RECORD: Final[dict[str, str]] = {
    "enriched_touchpoint": TOUCHPOINTS_TOPIC,
    "anonymous_touchpoint": TOUCHPOINTS_TOPIC,
    "session_update": SESSIONS_TOPIC,
    "journey_update": JOURNEYS_TOPIC,
    "identity_link": LINKS_TOPIC,
    "merge": MERGES_TOPIC,
    "link_rejection": MERGES_TOPIC,
}
"""The public topic of each record type."""

PUBLIC_TOPICS: Final[tuple[str, ...]] = tuple(dict.fromkeys(TOPIC_OF_RECORD.values()))
"""The topics the pipeline publishes the core's records on (the personalization topic, a
consent-filtered copy of journey updates, is not among them: the sink has them already)."""

SINK_TOPICS: Final[tuple[str, ...]] = (*PUBLIC_TOPICS, DEADLETTER_TOPIC)
"""Everything the ClickHouse sink copies: the public topics and the dead letters."""

_MAX_U32: Final = 2**32 - 1
_MAX_U64: Final = 2**64 - 1
# DateTime64 of ClickHouse holds 1900-01-01 .. 2299-12-31: refuse what it could not store.
_EARLIEST: Final = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(2300, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    if not _EARLIEST <= value < _LATEST:
        raise PydanticCustomError("invalid_timestamp", "timestamp outside 1900-01-01 .. 2299-12-31")
    return value


Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
"""A timezone-aware time (ISO-8601 with offset, as `iso()` of the core writes it), in UTC."""

Id = Annotated[StrictStr, StringConstraints(min_length=1, max_length=256)]
"""A customer, session, journey, event id or an identifier value."""

Token = Annotated[StrictStr, StringConstraints(min_length=1, max_length=64)]
"""A short code from an open vocabulary: channel, type, identifier kind, rule."""

Currency = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""An ISO 4217 currency code."""

Amount = Annotated[Decimal, Field(max_digits=18, decimal_places=4, allow_inf_nan=False)]
"""Money as the core writes it (decimal text); fits ClickHouse Decimal(18, 4)."""

Count = Annotated[StrictInt, Field(ge=0, le=_MAX_U32)]
Version = Annotated[StrictInt, Field(ge=0, le=_MAX_U64)]
Scalar = StrictStr | StrictBool | StrictInt | StrictFloat | None


class _Part(BaseModel):
    """A nested part of a record (unknown fields ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class IdentifierEntry(_Part):
    """One typed identifier of a touch (hashes only for email and phone)."""

    kind: Token
    value: Id


class ConsentEntry(_Part):
    """What the person agreed to."""

    analytics: StrictBool = True
    personalization: StrictBool = False
    marketing: StrictBool = False


class ChannelSwitchEntry(_Part):
    """The journey moved from one channel to another at this touch."""

    from_channel: Token
    to_channel: Token
    at: Timestamp
    event_id: Id


class _Record(BaseModel):
    """Common head of every public record."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Annotated[StrictInt, Field(ge=1, le=CONTRACT_VERSION)]


class EnrichedTouchpointRecord(_Record):
    """A touchpoint with where it belongs: customer, session, journey and place in it."""

    record_type: Literal["enriched_touchpoint"]
    event_id: Id
    channel: Token
    type: Token
    occurred_at: Timestamp
    received_at: Timestamp
    identities: tuple[IdentifierEntry, ...] = Field(min_length=1)
    consent: ConsentEntry = ConsentEntry()
    value: Amount | None = None
    currency: Currency | None = None
    properties: dict[Annotated[str, StringConstraints(min_length=1)], Scalar] = {}
    customer_id: Id
    session_id: Id | None
    journey_id: Id | None
    position: Annotated[StrictInt, Field(ge=1, le=_MAX_U32)] | None
    previous_channel: Token | None
    late: StrictBool
    version: Version


class AnonymousTouchpointRecord(_Record):
    """A touchpoint without analytics consent: counted, never linked; no identifier, no
    customer. Keyed by event id."""

    record_type: Literal["anonymous_touchpoint"]
    event_id: Id
    channel: Token
    type: Token
    occurred_at: Timestamp
    received_at: Timestamp
    consent: ConsentEntry = ConsentEntry()
    value: Amount | None = None
    currency: Currency | None = None
    properties: dict[Annotated[str, StringConstraints(min_length=1)], Scalar] = {}


class SessionUpdateRecord(_Record):
    """A session's state after a change: one customer's activity in one channel."""

    record_type: Literal["session_update"]
    session_id: Id
    customer_id: Id
    journey_id: Id
    channel: Token
    started_at: Timestamp
    ended_at: Timestamp
    touch_count: Count
    first_event_id: Id
    last_event_id: Id
    version: Version
    supersedes: tuple[Id, ...] = ()
    superseded_by: Id | None = None


class JourneyUpdateRecord(_Record):
    """A journey's state after a change: one customer's cross-channel path toward a goal."""

    record_type: Literal["journey_update"]
    journey_id: Id
    customer_id: Id
    status: Literal["open", "converted", "expired", "superseded"]
    final: StrictBool
    started_at: Timestamp
    ended_at: Timestamp
    first_channel: Token
    last_channel: Token
    first_event_id: Id
    last_event_id: Id
    touch_count: Count
    session_ids: tuple[Id, ...]
    channel_path: tuple[Token, ...]
    switch_count: Count
    switches: tuple[ChannelSwitchEntry, ...]
    conversion_event_id: Id | None
    conversion_type: Token | None
    conversion_channel: Token | None
    converted_at: Timestamp | None
    conversion_value: Amount | None
    conversion_currency: Currency | None
    version: Version
    supersedes: tuple[Id, ...] = ()
    superseded_by: Id | None = None
    consent: ConsentEntry = ConsentEntry()
    """The customer's latest known consent when this version was made (added in 1.1; absent:
    the defaults, analytics only)."""


class IdentityLinkRecord(_Record):
    """An identifier joined a customer."""

    record_type: Literal["identity_link"]
    customer_id: Id
    identifier_kind: Token
    identifier_value: Id
    event_id: Id


class MergeRecord(_Record):
    """Two customers proved to be one: the alias now forwards to the (older) survivor."""

    record_type: Literal["merge"]
    survivor_id: Id
    alias_id: Id
    identifier_kind: Token
    identifier_value: Id
    rule: Token
    event_id: Id

    @model_validator(mode="after")
    def _older_survives(self) -> MergeRecord:
        # Customer ids sort by creation time: the smaller one is older and survives. Alias
        # resolution in ClickHouse relies on it (the smallest survivor of an alias is the root).
        if not self.survivor_id < self.alias_id:
            raise PydanticCustomError(
                "invalid_value",
                "survivor_id must sort before alias_id (the older customer survives)",
            )
        return self


class LinkRejectionRecord(_Record):
    """A link that was not applied because it would break a rule."""

    record_type: Literal["link_rejection"]
    customer_id: Id
    identifier_kind: Token
    identifier_value: Id
    rule: Token
    event_id: Id
    other_customer_id: Id | None


PublicRecord = (
    EnrichedTouchpointRecord
    | AnonymousTouchpointRecord
    | SessionUpdateRecord
    | JourneyUpdateRecord
    | IdentityLinkRecord
    | MergeRecord
    | LinkRejectionRecord
)
"""Any record of the public topics."""

RECORD_MODELS: Final[dict[str, type[PublicRecord]]] = {
    "enriched_touchpoint": EnrichedTouchpointRecord,
    "anonymous_touchpoint": AnonymousTouchpointRecord,
    "session_update": SessionUpdateRecord,
    "journey_update": JourneyUpdateRecord,
    "identity_link": IdentityLinkRecord,
    "merge": MergeRecord,
    "link_rejection": LinkRejectionRecord,
}
"""The model of each record type."""


def _invalid(reason: str, loc: str, msg: str) -> InvalidRecord:
    error: FieldError = {"loc": loc, "msg": msg, "reason": reason}
    return InvalidRecord(reason, [error])


def _head(data: dict[str, Any]) -> type[PublicRecord]:
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _invalid("missing_field", "schema_version", "an integer schema_version is required")
    if version > CONTRACT_VERSION:
        raise _invalid(
            "schema_version",
            "schema_version",
            f"version {version} is newer than the supported {CONTRACT_VERSION}",
        )
    record_type = data.get("record_type")
    if not isinstance(record_type, str):
        raise _invalid("missing_field", "record_type", "a string record_type is required")
    model = RECORD_MODELS.get(record_type)
    if model is None:
        known = ", ".join(sorted(RECORD_MODELS))
        raise _invalid("unknown_type", "record_type", f"unknown record type (known: {known})")
    return model


def decode_record(raw: bytes) -> PublicRecord:
    """The record of one message of a public topic; InvalidRecord names the field and reason."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid("not_json", "", "the message is not JSON") from None
    return record_from(data)


def record_from(data: object) -> PublicRecord:
    """The record of a decoded JSON value; InvalidRecord names the field and reason."""
    if not isinstance(data, dict):
        raise _invalid("not_object", "", "the message is not a JSON object")
    model = _head(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        # never chain the pydantic error: its text holds the input
        raise InvalidRecord(primary_reason(errors), errors) from None


def decode_personalization(raw: bytes | None) -> JourneyUpdateRecord | None:
    """A message of the personalization topic: a journey update, or None for a tombstone (the
    customer withdrew personalization consent or merged into another: forget the key)."""
    if raw is None:
        return None
    record = decode_record(raw)
    if not isinstance(record, JourneyUpdateRecord):
        raise _invalid("unknown_type", "record_type", "only journey_update is published here")
    return record


def record_key(data: dict[str, Any]) -> str:
    """The Kafka key of a core record: its customer (a merge: the survivor; an anonymous
    touchpoint, which has no customer: its event id)."""
    record_type = data.get("record_type")
    if record_type == "merge":
        return str(data["survivor_id"])
    if record_type == "anonymous_touchpoint":
        return str(data["event_id"])
    return str(data["customer_id"])


def public_record(data: dict[str, Any]) -> Record:
    """(topic, key, value) of one core record's `to_dict()`, keyed by customer id.

    Merges are keyed by the survivor. The record is checked against its model first, so a
    producer cannot publish what consumers would refuse.
    """
    value = orjson.dumps(data)
    record = decode_record(value)
    return Record(TOPIC_OF_RECORD[record.record_type], record_key(data).encode(), value)
