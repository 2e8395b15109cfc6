"""Event time on the receiver's clock: timezone checks and client clock-skew correction."""

from __future__ import annotations

from datetime import UTC, datetime

from omnijourney.exceptions import NaiveDatetime


def require_utc(value: datetime, name: str) -> datetime:
    """`value` converted to UTC; NaiveDatetime when it carries no timezone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetime(f"{name} must be timezone-aware (got a naive datetime)")
    return value.astimezone(UTC)


def correct_skew(
    occurred_at: datetime, *, received_at: datetime, sent_at: datetime | None = None
) -> datetime:
    """Event time corrected for the client's clock, as Segment and Snowplow do.

    With `sent_at` (client clock when it sent) the client's offset is removed:
    `received_at - (sent_at - occurred_at)`. An event cannot happen after it was received,
    so the result never exceeds `received_at` (that also tames clocks running ahead when
    no `sent_at` is given).
    """
    occurred = require_utc(occurred_at, "occurred_at")
    received = require_utc(received_at, "received_at")
    if sent_at is not None:
        occurred = received - (require_utc(sent_at, "sent_at") - occurred)
    return min(occurred, received)
