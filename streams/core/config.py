"""Rules of the stitching core (identity protection, sessions, journeys) with retail defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Final

from omnijourney.exceptions import ConfigurationError
from streams.core.model import IDENTIFIER_KINDS

_JUNK: Final = frozenset({"0", "-1", "null", "none", "undefined", "unknown", "anonymous", "n/a"})


@dataclass(frozen=True, slots=True)
class IdentifierRule:
    """How one identifier kind takes part in identity resolution."""

    priority: int
    """Higher wins: a touch belongs to the customer of its highest-priority identifier."""
    max_per_customer: int
    """A link that would give a customer more identifiers of this kind is rejected."""
    blocked: frozenset[str] = frozenset()
    """Junk values that never identify anybody (never routed, never linked)."""


@dataclass(frozen=True, slots=True)
class ChannelRule:
    """Sessionization and lateness of one channel."""

    session_gap: timedelta
    """Inactivity that ends a session of this channel."""
    max_session: timedelta
    """A session never spans longer than this from its first touch."""
    allowed_lateness: timedelta
    """How far behind the customer's watermark an event may arrive and still be placed."""


@dataclass(frozen=True, slots=True)
class JourneyRule:
    """When a cross-channel journey ends."""

    conversion_types: frozenset[str] = frozenset({"purchase"})
    """Touch types that convert (and end) a journey, in any channel."""
    inactivity: timedelta = timedelta(days=7)
    """A journey without a touch for longer than this expires."""
    max_duration: timedelta = timedelta(days=90)
    """A journey never spans longer than this (keeps state bounded for never-idle customers)."""
    follow_up_types: frozenset[str] = frozenset(
        {"call", "call_started", "call_ended", "return", "support", "complaint"}
    )
    """After a conversion, these touch types still belong to the converted journey."""
    follow_up_window: timedelta = timedelta(days=7)
    """How long after its conversion a journey takes follow-ups (a call about the order)."""
    identity_only_channels: frozenset[str] = frozenset({"crm"})
    """Channels whose touches link identities but are no customer activity (registry updates)."""


def default_identifier_rules() -> dict[str, IdentifierRule]:
    """Priorities strongest first; one customer id, a few cards/emails/phones, many devices."""
    return {
        "customer_id": IdentifierRule(60, 1, _JUNK | {"", "guest"}),
        "loyalty_id": IdentifierRule(50, 3, _JUNK),
        "email_hash": IdentifierRule(40, 3),
        "phone_hash": IdentifierRule(30, 3),
        "device_id": IdentifierRule(20, 50, _JUNK | {"00000000-0000-0000-0000-000000000000"}),
        "anonymous_id": IdentifierRule(10, 1000, _JUNK),
    }


def _minutes(value: int) -> timedelta:
    return timedelta(minutes=value)


def default_channel_rules() -> dict[str, ChannelRule]:
    """Web and app as GA4/Snowplow (30 min); a store visit; a call; campaign clicks."""
    hours = timedelta(hours=1)
    return {
        "web": ChannelRule(_minutes(30), 24 * hours, hours),
        "app": ChannelRule(_minutes(30), 24 * hours, 24 * hours),
        "pos": ChannelRule(hours, 6 * hours, 24 * hours),
        "callcenter": ChannelRule(_minutes(15), 4 * hours, hours),
        "email": ChannelRule(hours, 24 * hours, 24 * hours),
        "sms": ChannelRule(hours, 24 * hours, 24 * hours),
        "crm": ChannelRule(_minutes(30), 24 * hours, 24 * hours),
    }


DEFAULT_CHANNEL: Final = ChannelRule(_minutes(30), timedelta(hours=24), timedelta(hours=1))


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Everything the stitching core needs to decide; the defaults suit a retailer."""

    identifiers: Mapping[str, IdentifierRule] = field(default_factory=default_identifier_rules)
    channels: Mapping[str, ChannelRule] = field(default_factory=default_channel_rules)
    default_channel: ChannelRule = DEFAULT_CHANNEL
    """Rule of channels not named in `channels`."""
    journeys: JourneyRule = JourneyRule()
    dedupe_horizon: timedelta = timedelta(days=7)
    """How long behind the watermark an event id is remembered to drop duplicates."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "identifiers", MappingProxyType(dict(self.identifiers)))
        object.__setattr__(self, "channels", MappingProxyType(dict(self.channels)))
        missing = [kind for kind in IDENTIFIER_KINDS if kind not in self.identifiers]
        if missing:
            raise ConfigurationError(f"identifiers: no rule for {', '.join(missing)}")
        for kind, identifier in self.identifiers.items():
            if kind not in IDENTIFIER_KINDS:
                raise ConfigurationError(f"identifiers.{kind}: unknown identifier kind")
            if identifier.max_per_customer < 1:
                raise ConfigurationError(f"identifiers.{kind}.max_per_customer: must be >= 1")
        for name, channel in [*self.channels.items(), ("default_channel", self.default_channel)]:
            if channel.session_gap <= timedelta(0) or channel.max_session <= timedelta(0):
                raise ConfigurationError(f"channels.{name}: session gap and length must be > 0")
            if channel.allowed_lateness < timedelta(0):
                raise ConfigurationError(f"channels.{name}.allowed_lateness: must be >= 0")
        rule = self.journeys
        if rule.inactivity <= timedelta(0) or rule.max_duration <= timedelta(0):
            raise ConfigurationError("journeys: inactivity and max_duration must be > 0")
        if rule.follow_up_window < timedelta(0):
            raise ConfigurationError("journeys.follow_up_window: must be >= 0")
        if rule.conversion_types & rule.follow_up_types:
            raise ConfigurationError("journeys: a type cannot both convert and follow up")
        if self.dedupe_horizon < self.max_lateness:
            raise ConfigurationError("dedupe_horizon: must be at least the largest lateness")

    @property
    def max_lateness(self) -> timedelta:
        """The largest allowed lateness of any channel: the horizon of mutable history."""
        rules = [*self.channels.values(), self.default_channel]
        return max(rule.allowed_lateness for rule in rules)

    def channel(self, name: str) -> ChannelRule:
        """The rule of a channel (the default rule for channels not configured)."""
        return self.channels.get(name, self.default_channel)
