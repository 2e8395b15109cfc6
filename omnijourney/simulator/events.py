"""Touches as producer events: the JSON objects an SDK, a till or a tool sends to the edge.

Clear `email` / `phone` identifiers appear here on purpose: this is the edge form, and the
Emitter (or the collector) hashes them before anything reaches a topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from omnijourney.simulator.behaviour import Touch

_CONSENT: Final = (
    {"analytics": True, "personalization": True, "marketing": False},
    {"analytics": True, "personalization": True, "marketing": True},
)


def iso(ts: int) -> str:
    """Epoch seconds as RFC 3339 UTC (`2024-05-01T10:00:00Z`)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def producer_event(event_id: str, touch: Touch, marketing: bool) -> dict[str, Any]:
    """The event a producer sends for a touch (without `sent_at`: the sender stamps it)."""
    return {
        "event_id": event_id,
        "schema_version": 1,
        "channel": touch.channel,
        "type": touch.type,
        "occurred_at": iso(touch.ts),
        "identities": [{"kind": kind, "value": value} for kind, value, _ in touch.ids],
        "consent": _CONSENT[marketing],
        "properties": touch.props,
    }
