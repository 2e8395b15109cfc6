"""Shared test data for the schema tests (synthetic PII only: example.com, 555-01xx)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.examples import examples
from schemas.pii import PiiHasher
from schemas.touchpoint import Touchpoint
from schemas.validation import parse_touchpoint

KEY = b"omnijourney-test-key-0123456789abcdef"
RECEIVED = datetime(2024, 5, 1, 8, 0, 7, tzinfo=UTC)
HASHER = PiiHasher(KEY, "US")


def example(channel: str, type_: str) -> dict[str, Any]:
    """A fresh valid producer event of (channel, type)."""
    for event in examples():
        if event["channel"] == channel and event["type"] == type_:
            return event
    raise LookupError((channel, type_))


def parse(event: Any, hasher: PiiHasher = HASHER) -> Touchpoint:
    """Parse a producer event (any JSON value) as the edge does."""
    return parse_touchpoint(orjson.dumps(event), received_at=RECEIVED, hasher=hasher)
