"""The input of the stitching core: a validated touchpoint with its typed identifiers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Final

from omnijourney.exceptions import InvalidTouch

IDENTIFIER_KINDS: Final[tuple[str, ...]] = (
    "customer_id",
    "loyalty_id",
    "email_hash",
    "phone_hash",
    "device_id",
    "anonymous_id",
)
"""The identifier kinds the core knows, strongest first (the default priority order)."""

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_MAX_ID_CHARS: Final = 256
_MAX_PROPERTIES: Final = 64

PropertyValue = str | int | float | bool | None
"""A JSON scalar: the only values touch properties may hold."""


def micros(moment: datetime, field_name: str = "time") -> int:
    """Microseconds since the Unix epoch of a timezone-aware datetime (naive ones are refused)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidTouch(field_name, "naive datetime; a timezone-aware UTC time is required")
    return (moment - EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """The UTC datetime of microseconds since the Unix epoch."""
    return EPOCH + timedelta(microseconds=value)


def iso(moment: datetime) -> str:
    """ISO-8601 text of a UTC datetime, with microseconds and a trailing Z."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str, field_name: str) -> datetime:
    """A UTC datetime from ISO-8601 text that carries an offset (naive text is refused)."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise InvalidTouch(field_name, f"not an ISO-8601 time: {text!r}") from exc
    micros(moment, field_name)
    return moment.astimezone(UTC)


def _token(value: object, field_name: str) -> str:
    """A short non-empty identifier-like string (event ids, channels, types)."""
    if not isinstance(value, str) or not value:
        raise InvalidTouch(field_name, "must be a non-empty string")
    if len(value) > _MAX_ID_CHARS:
        raise InvalidTouch(field_name, f"longer than {_MAX_ID_CHARS} characters")
    if value != value.strip():
        raise InvalidTouch(field_name, "must not start or end with whitespace")
    return value


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    """One typed identifier of a person (hashes only for email and phone)."""

    kind: str
    value: str
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in IDENTIFIER_KINDS:
            raise InvalidTouch("identities.kind", f"unknown identifier kind {self.kind!r}")
        _token(self.value, f"identities.{self.kind}")
        # The routing key of the identifier's state; kinds hold no ':' so it splits back safely.
        object.__setattr__(self, "key", f"{self.kind}:{self.value}")

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Identifier:
        """Inverse of to_dict."""
        kind, value = data.get("kind"), data.get("value")
        if not isinstance(kind, str) or not isinstance(value, str):
            raise InvalidTouch("identities", "each identifier needs string kind and value")
        return cls(kind, value)


@dataclass(frozen=True, slots=True)
class Consent:
    """What the person agreed to (decision 0016).

    analytics: the touch may be linked to a customer and stored with its identifiers (without
    it the touch is only counted anonymously); personalization: the customer's journey may be
    published for personalization and looked up; marketing: carried for analysts to segment on.
    """

    analytics: bool = True
    personalization: bool = False
    marketing: bool = False

    def to_dict(self) -> dict[str, bool]:
        """JSON-ready form."""
        return {
            "analytics": self.analytics,
            "personalization": self.personalization,
            "marketing": self.marketing,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Consent:
        """Inverse of to_dict (missing flags take the defaults: analytics yes, the rest no)."""
        return cls(
            analytics=bool(data.get("analytics", True)),
            personalization=bool(data.get("personalization", False)),
            marketing=bool(data.get("marketing", False)),
        )


def _identities(value: Iterable[Identifier]) -> tuple[Identifier, ...]:
    """The distinct identifiers in their given order; at least one is required."""
    if isinstance(value, str | bytes):
        raise InvalidTouch("identities", "must be a sequence of identifiers")
    seen: dict[Identifier, None] = {}
    for item in value:
        if not isinstance(item, Identifier):
            raise InvalidTouch("identities", f"not an Identifier: {item!r}")
        seen[item] = None
    if not seen:
        raise InvalidTouch("identities", "at least one identifier is required")
    return tuple(seen)


def _properties(value: Mapping[str, PropertyValue]) -> Mapping[str, PropertyValue]:
    """A read-only copy holding JSON scalars under string keys."""
    if not isinstance(value, Mapping):
        raise InvalidTouch("properties", "must be a mapping")
    if len(value) > _MAX_PROPERTIES:
        raise InvalidTouch("properties", f"more than {_MAX_PROPERTIES} entries")
    copy: dict[str, PropertyValue] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name:
            raise InvalidTouch("properties", f"keys must be non-empty strings, got {name!r}")
        if item is not None and not isinstance(item, str | int | float | bool):
            raise InvalidTouch(f"properties.{name}", "must be a JSON scalar")
        copy[name] = item
    return MappingProxyType(copy)


def _value(value: Decimal | None, currency: str | None) -> None:
    """Money needs a finite amount and an ISO-4217 style currency code."""
    if value is None:
        if currency is not None:
            raise InvalidTouch("currency", "given without a value")
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidTouch("value", "must be a finite Decimal")
    if currency is None or len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise InvalidTouch("currency", "a value needs a three-letter upper-case currency code")


@dataclass(frozen=True, slots=True)
class Touch:
    """A validated touchpoint as the core sees it (times are timezone-aware, kept in UTC)."""

    event_id: str
    channel: str
    type: str
    occurred_at: datetime
    received_at: datetime
    identities: tuple[Identifier, ...]
    consent: Consent = Consent()
    value: Decimal | None = None
    currency: str | None = None
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    occurred_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _token(self.event_id, "event_id")
        _token(self.channel, "channel")
        _token(self.type, "type")
        occurred = micros(self.occurred_at, "occurred_at")
        if occurred < 0:
            raise InvalidTouch("occurred_at", "before 1970-01-01")
        micros(self.received_at, "received_at")
        if not isinstance(self.consent, Consent):
            raise InvalidTouch("consent", "must be a Consent")
        _value(self.value, self.currency)
        # Normalise to UTC once so that every output carries the same representation.
        setter = object.__setattr__
        setter(self, "occurred_at", self.occurred_at.astimezone(UTC))
        setter(self, "received_at", self.received_at.astimezone(UTC))
        setter(self, "identities", _identities(self.identities))
        setter(self, "properties", _properties(self.properties))
        setter(self, "occurred_us", occurred)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (Decimal as text, times as ISO-8601 UTC)."""
        return {
            "event_id": self.event_id,
            "channel": self.channel,
            "type": self.type,
            "occurred_at": iso(self.occurred_at),
            "received_at": iso(self.received_at),
            "identities": [ident.to_dict() for ident in self.identities],
            "consent": self.consent.to_dict(),
            "value": None if self.value is None else str(self.value),
            "currency": self.currency,
            "properties": dict(self.properties),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Touch:
        """Inverse of to_dict; bad input raises InvalidTouch naming the field."""
        try:
            identities = data["identities"]
            consent = data.get("consent") or {}
            value = data.get("value")
            if not isinstance(identities, list) or not isinstance(consent, Mapping):
                raise InvalidTouch("identities", "must be a list of identifiers")
            properties = data.get("properties") or {}
            if not isinstance(properties, Mapping):
                raise InvalidTouch("properties", "must be a mapping")
            return cls(
                event_id=_str(data, "event_id"),
                channel=_str(data, "channel"),
                type=_str(data, "type"),
                occurred_at=parse_time(_str(data, "occurred_at"), "occurred_at"),
                received_at=parse_time(_str(data, "received_at"), "received_at"),
                identities=tuple(Identifier.from_dict(item) for item in identities),
                consent=Consent.from_dict(consent),
                value=None if value is None else Decimal(str(value)),
                currency=_optional_str(data, "currency"),
                properties=properties,
            )
        except KeyError as exc:
            raise InvalidTouch(str(exc.args[0]), "missing") from exc
        except InvalidOperation as exc:
            raise InvalidTouch("value", "not a decimal number") from exc


def _str(data: Mapping[str, object], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise InvalidTouch(name, "must be a string")
    return value


def _optional_str(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidTouch(name, "must be a string or null")
    return value
