"""Broken events, as buggy SDKs and integrations send them; the edge must refuse every one.

None of them carries an email or phone number: a malformed event ends up as a dead letter,
and even a redacted dead letter is better without PII.
"""

from __future__ import annotations

import random
from typing import Any, Final

import orjson

from omnijourney.simulator.events import iso
from omnijourney.simulator.population import Ids

MALFORMED_KINDS: Final = ("not_json", "wrong_types", "junk_identifier", "missing_field")
_JUNK_IDS: Final = (
    ("anonymous_id", "undefined"),
    ("anonymous_id", "null"),
    ("device_id", "00000000-0000-0000-0000-000000000000"),
    ("customer_id", "[object Object]"),
    ("device_id", "9774d56d682e549c"),
)


def _base(channel: str, event_id: str, ts: int, ids: Ids) -> dict[str, Any]:
    if channel == "app":
        identities = [{"kind": "device_id", "value": ids.uuid()}]
        type_, props = "screen_view", {"screen_name": "Home"}
    elif channel == "pos":
        identities = [{"kind": "anonymous_id", "value": f"tok_{ids.hex(24)}"}]
        type_, props = "store_visit", {"store_id": "S-001"}
    else:
        channel = "web"
        identities = [{"kind": "anonymous_id", "value": ids.uuid()}]
        type_, props = "page_view", {"url": "https://shop.example.com/"}
    return {
        "event_id": event_id,
        "schema_version": 1,
        "channel": channel,
        "type": type_,
        "occurred_at": iso(ts),
        "identities": identities,
        "properties": props,
    }


def malformed_event(
    rng: random.Random, ids: Ids, channel: str, ts: int, event_id: str
) -> tuple[str, bytes]:
    """(kind, raw bytes) of one malformed event of a channel (web, app or pos shaped)."""
    kind = rng.choice(MALFORMED_KINDS)
    event = _base(channel, event_id, ts, ids)
    if kind == "not_json":
        raw = orjson.dumps(event)
        return kind, raw[: rng.randint(8, len(raw) - 2)]  # cut short: never valid JSON
    if kind == "wrong_types":
        field = rng.choice(("occurred_at", "identities", "properties", "channel"))
        event[field] = {
            "occurred_at": "yesterday",
            "identities": "abc",
            "properties": [1, 2],
            "channel": 7,
        }[field]
    elif kind == "junk_identifier":
        junk_kind, junk_value = rng.choice(_JUNK_IDS)
        event["identities"] = [{"kind": junk_kind, "value": junk_value}]
    else:
        del event[rng.choice(("occurred_at", "identities", "type", "event_id"))]
    return kind, orjson.dumps(event)
