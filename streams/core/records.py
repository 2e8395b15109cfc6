"""Typed, versioned output records of the stitching core, each with a JSON-ready `to_dict`.

Records are immutable named tuples (cheap to build on the hot path). `version` grows with
every change of a customer (also across merges), so for one session, journey or touchpoint
the record with the highest version is the current one (ClickHouse ReplacingMergeTree).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Final, Literal, NamedTuple

from streams.core.model import Consent, Identifier, Touch, iso

SCHEMA_VERSION: Final = 1

JourneyStatus = Literal["open", "converted", "expired", "superseded"]
OPEN: Final = "open"
CONVERTED: Final = "converted"
EXPIRED: Final = "expired"
SUPERSEDED: Final = "superseded"


def _head(record_type: str) -> dict[str, object]:
    return {"record_type": record_type, "schema_version": SCHEMA_VERSION}


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class EnrichedTouchpoint(NamedTuple):
    """A touchpoint with where it belongs: customer, session, journey, position."""

    touch: Touch
    customer_id: str
    session_id: str | None
    journey_id: str | None
    position: int | None
    """1-based place in the journey (None for late or identity-only touches)."""
    previous_channel: str | None
    """Channel of the touch before it in the journey."""
    late: bool
    """Arrived beyond its channel's allowed lateness: kept, but it changes no journey."""
    version: int

    @property
    def record_type(self) -> str:
        """Name of the record kind in serialized form."""
        return "enriched_touchpoint"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: the touch's fields plus the enrichment."""
        data = _head(self.record_type)
        data.update(self.touch.to_dict())
        data.update(
            customer_id=self.customer_id,
            session_id=self.session_id,
            journey_id=self.journey_id,
            position=self.position,
            previous_channel=self.previous_channel,
            late=self.late,
            version=self.version,
        )
        return data


class SessionUpdate(NamedTuple):
    """A session's state after a change: one customer's activity in one channel."""

    session_id: str
    customer_id: str
    journey_id: str
    channel: str
    started_at: datetime
    ended_at: datetime
    """Time of the last touch so far."""
    touch_count: int
    first_event_id: str
    last_event_id: str
    version: int
    supersedes: tuple[str, ...] = ()
    """Sessions this one replaces (merged into it by a late touch or an identity merge)."""
    superseded_by: str | None = None
    """Set on the last version of a session that no longer exists."""

    @property
    def record_type(self) -> str:
        """Name of the record kind in serialized form."""
        return "session_update"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        data = _head(self.record_type)
        data.update(
            session_id=self.session_id,
            customer_id=self.customer_id,
            journey_id=self.journey_id,
            channel=self.channel,
            started_at=iso(self.started_at),
            ended_at=iso(self.ended_at),
            touch_count=self.touch_count,
            first_event_id=self.first_event_id,
            last_event_id=self.last_event_id,
            version=self.version,
            supersedes=list(self.supersedes),
            superseded_by=self.superseded_by,
        )
        return data


class ChannelSwitch(NamedTuple):
    """The journey moved from one channel to another at this touch."""

    from_channel: str
    to_channel: str
    at: datetime
    event_id: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "from_channel": self.from_channel,
            "to_channel": self.to_channel,
            "at": iso(self.at),
            "event_id": self.event_id,
        }


class Conversion(NamedTuple):
    """The touch that converted a journey."""

    event_id: str
    type: str
    channel: str
    at: datetime
    value: Decimal | None
    currency: str | None


class JourneyUpdate(NamedTuple):
    """A journey's state after a change: one customer's cross-channel path."""

    journey_id: str
    customer_id: str
    status: JourneyStatus
    final: bool
    """Beyond the lateness horizon: this version never changes again."""
    started_at: datetime
    ended_at: datetime
    """Time of the last touch so far."""
    first_channel: str
    last_channel: str
    first_event_id: str
    last_event_id: str
    touch_count: int
    session_ids: tuple[str, ...]
    channel_path: tuple[str, ...]
    """Channels in event-time order, repeats collapsed (web, pos, callcenter)."""
    switches: tuple[ChannelSwitch, ...]
    conversion: Conversion | None
    version: int
    supersedes: tuple[str, ...] = ()
    superseded_by: str | None = None
    consent: Consent = Consent()
    """The customer's latest known consent when this version was made (decision 0016)."""

    @property
    def record_type(self) -> str:
        """Name of the record kind in serialized form."""
        return "journey_update"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (the conversion flattened into conversion_* fields)."""
        conversion = self.conversion
        data = _head(self.record_type)
        data.update(
            journey_id=self.journey_id,
            customer_id=self.customer_id,
            status=self.status,
            final=self.final,
            started_at=iso(self.started_at),
            ended_at=iso(self.ended_at),
            first_channel=self.first_channel,
            last_channel=self.last_channel,
            first_event_id=self.first_event_id,
            last_event_id=self.last_event_id,
            touch_count=self.touch_count,
            session_ids=list(self.session_ids),
            channel_path=list(self.channel_path),
            switch_count=len(self.switches),
            switches=[switch.to_dict() for switch in self.switches],
            conversion_event_id=conversion and conversion.event_id,
            conversion_type=conversion and conversion.type,
            conversion_channel=conversion and conversion.channel,
            converted_at=conversion and iso(conversion.at),
            conversion_value=conversion and _money(conversion.value),
            conversion_currency=conversion and conversion.currency,
            version=self.version,
            supersedes=list(self.supersedes),
            superseded_by=self.superseded_by,
            consent=self.consent.to_dict(),
        )
        return data


class AnonymousTouchpoint(NamedTuple):
    """A touch without analytics consent: counted, never linked, no identifier, no customer."""

    touch: Touch

    @property
    def record_type(self) -> str:
        """Name of the record kind in serialized form."""
        return "anonymous_touchpoint"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: the touch's facts without its identifiers."""
        data = _head(self.record_type)
        data.update(self.touch.to_dict())
        del data["identities"]
        return data


class ConsentChange(NamedTuple):
    """A customer's latest known consent changed (a newer touch or notice, or a merge).

    A signal inside the worker (it drives the personalization topic), not a public record:
    the consent itself is public on every journey update.
    """

    customer_id: str
    consent: Consent
    previous: Consent
    event_id: str
    """The touch whose consent is now the latest."""
    version: int

    @property
    def record_type(self) -> str:
        """Name of the record kind in serialized form."""
        return "consent_change"

    @property
    def withdraws_personalization(self) -> bool:
        """Personalization was allowed and no longer is."""
        return self.previous.personalization and not self.consent.personalization

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        data = _head(self.record_type)
        data.update(
            customer_id=self.customer_id,
            consent=self.consent.to_dict(),
            previous=self.previous.to_dict(),
            event_id=self.event_id,
            version=self.version,
        )
        return data


class IdentityLink(NamedTuple):
    """An identifier joined a customer (it created it, or a claim on it succeeded)."""

    customer_id: str
    identifier: Identifier
    event_id: str
    """The touch that is the evidence of the link."""

    @property
    def record_type(self) -> str:
        """Name of the record kind in serialized form."""
        return "identity_link"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        data = _head(self.record_type)
        data.update(
            customer_id=self.customer_id,
            identifier_kind=self.identifier.kind,
            identifier_value=self.identifier.value,
            event_id=self.event_id,
        )
        return data


class Merge(NamedTuple):
    """Two customers proved to be one: the alias now forwards to the (older) survivor."""

    survivor_id: str
    alias_id: str
    identifier: Identifier
    """The identifier both claimed."""
    rule: str
    event_id: str
    """The touch that is the evidence of the merge."""

    @property
    def record_type(self) -> str:
        """Name of the record kind in serialized form."""
        return "merge"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        data = _head(self.record_type)
        data.update(
            survivor_id=self.survivor_id,
            alias_id=self.alias_id,
            identifier_kind=self.identifier.kind,
            identifier_value=self.identifier.value,
            rule=self.rule,
            event_id=self.event_id,
        )
        return data


class LinkRejection(NamedTuple):
    """A link that was not applied because it would break a rule; nothing was changed."""

    customer_id: str
    """The customer of the touch that carried the link."""
    identifier: Identifier
    """The identifier that could not join it."""
    rule: str
    """`limit:<kind>` (too many of a kind), `blocked:<kind>` (junk value)."""
    event_id: str
    other_customer_id: str | None
    """The customer holding the identifier, when the link asked for a merge."""

    @property
    def record_type(self) -> str:
        """Name of the record kind in serialized form."""
        return "link_rejection"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        data = _head(self.record_type)
        data.update(
            customer_id=self.customer_id,
            identifier_kind=self.identifier.kind,
            identifier_value=self.identifier.value,
            rule=self.rule,
            event_id=self.event_id,
            other_customer_id=self.other_customer_id,
        )
        return data


Record = (
    EnrichedTouchpoint
    | SessionUpdate
    | JourneyUpdate
    | IdentityLink
    | Merge
    | LinkRejection
    | AnonymousTouchpoint
    | ConsentChange
)
"""Any output of the core."""
