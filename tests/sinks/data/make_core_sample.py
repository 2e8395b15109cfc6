"""Regenerate core_sample.jsonl: `python tests/sinks/data/make_core_sample.py` with the stitching
core (streams.core) importable. A cookie and an app device of one person merge into her
customer id; she buys in a store the next day. Every record's to_dict(), one JSON per line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from schemas.contracts import TOPIC_OF_RECORD
from streams.core import Identifier, Simulator, Stitcher, Touch

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _touch(
    event_id: str,
    channel: str,
    type_: str,
    minutes: int,
    ids: list[tuple[str, str]],
    value: str | None = None,
) -> Touch:
    at = T0 + timedelta(minutes=minutes)
    return Touch(
        event_id,
        channel,
        type_,
        at,
        at + timedelta(seconds=1),
        tuple(Identifier(kind, val) for kind, val in ids),
        value=Decimal(value) if value else None,
        currency="EUR" if value else None,
    )


def main() -> None:
    """Run the story through the core and write its records."""
    touches = [
        _touch("e1", "web", "page_view", 0, [("anonymous_id", "cookie-1")]),
        _touch("e2", "web", "product_view", 2, [("anonymous_id", "cookie-1")]),
        _touch("e3", "app", "product_view", 5, [("device_id", "dev-1")]),
        _touch("e4", "web", "login", 10, [("anonymous_id", "cookie-1"), ("customer_id", "ann")]),
        _touch("e5", "app", "login", 12, [("device_id", "dev-1"), ("customer_id", "ann")]),
        _touch("e6", "pos", "purchase", 24 * 60, [("customer_id", "ann")], "120.00"),
    ]
    simulator = Simulator(Stitcher(), partitions=2, seed=1)
    simulator.submit(touches)
    records = simulator.run()
    simulator.tick(T0 + timedelta(days=60))
    records += simulator.run()
    out = Path(__file__).with_name("core_sample.jsonl")
    public = [r for r in records if r.record_type in TOPIC_OF_RECORD]  # no internal signals
    out.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in public))


if __name__ == "__main__":
    main()
