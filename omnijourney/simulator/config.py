"""What to simulate, and the rules the true journeys and sessions are cut with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, TypeVar

from omnijourney.exceptions import ConfigurationError, NaiveDatetime

_HOUR: Final = 3600
_DAY: Final = 24 * _HOUR
_T = TypeVar("_T")


def _frozen(mapping: Mapping[str, _T]) -> Mapping[str, _T]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class TruthRules:
    """Journey and session rules of the truth, in seconds.

    They mirror the defaults of the stitching core (`streams.core.config.CoreConfig`), so a
    pipeline that resolves every identity right produces exactly these journeys: a journey
    ends at a conversion (follow-ups such as a call about the order still join it within the
    follow-up window), after `inactivity`, or at `max_duration`; inside a journey a session is
    one channel's touches cut by that channel's gap and length. `crm` touches only link ids.
    """

    sessions: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: _frozen(
            {
                "web": (1800, _DAY),
                "app": (1800, _DAY),
                "pos": (_HOUR, 6 * _HOUR),
                "callcenter": (900, 4 * _HOUR),
                "email": (_HOUR, _DAY),
                "sms": (_HOUR, _DAY),
                "crm": (1800, _DAY),
            }
        )
    )
    """channel -> (inactivity gap that ends a session, longest session)."""
    default_session: tuple[int, int] = (1800, _DAY)
    lateness: Mapping[str, int] = field(
        default_factory=lambda: _frozen(
            {
                "web": _HOUR,
                "app": _DAY,
                "pos": _DAY,
                "callcenter": _HOUR,
                "email": _DAY,
                "sms": _DAY,
                "crm": _DAY,
            }
        )
    )
    """channel -> how far behind the latest event of that channel of its customer an event may
    arrive and still be placed (lateness is judged within a channel, as the core does)."""
    default_lateness: int = _HOUR
    conversion_types: frozenset[str] = frozenset({"purchase"})
    follow_up_types: frozenset[str] = frozenset(
        {"call", "call_started", "call_ended", "return", "support", "complaint"}
    )
    follow_up_window: int = 7 * _DAY
    inactivity: int = 7 * _DAY
    max_duration: int = 90 * _DAY
    identity_only_channels: frozenset[str] = frozenset({"crm"})

    def session(self, channel: str) -> tuple[int, int]:
        """(gap, longest) of a channel's sessions."""
        return self.sessions.get(channel, self.default_session)

    def allowed_lateness(self, channel: str) -> int:
        """Seconds an event may be behind its customer's latest event of the same channel."""
        return self.lateness.get(channel, self.default_lateness)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """A simulation: who, how long, from when, and how messy the clients are."""

    customers: int
    days: int
    start: datetime
    seed: int = 1
    malformed_share: float = 0.005
    """Share of all records sent that are malformed (wrong types, junk ids, not JSON...)."""
    duplicate_share: float = 0.01
    """Share of web/app/till events a flaky client sends twice (same event_id)."""
    batch_till_share: float = 0.3
    """Share of store tills that upload their events in a nightly batch."""
    currency: str = "EUR"
    rules: TruthRules = field(default_factory=TruthRules)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise NaiveDatetime("start must be timezone-aware (UTC)")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        if not 1 <= self.customers <= 10_000_000:
            raise ConfigurationError(f"customers must be 1..10,000,000, got {self.customers}")
        if not 1 <= self.days <= 366:
            raise ConfigurationError(f"days must be 1..366, got {self.days}")
        for name in ("malformed_share", "duplicate_share", "batch_till_share"):
            value = getattr(self, name)
            upper = 1.0 if name == "batch_till_share" else 0.5
            if not 0.0 <= value <= upper:
                raise ConfigurationError(f"{name} must be between 0 and {upper}, got {value}")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ConfigurationError(f"currency must be an ISO 4217 code, got {self.currency!r}")

    @property
    def start_ts(self) -> int:
        """Start as whole epoch seconds."""
        return int(self.start.timestamp())

    @property
    def end_ts(self) -> int:
        """End of the last simulated day (nightly uploads of that day come after it)."""
        return self.start_ts + self.days * _DAY
