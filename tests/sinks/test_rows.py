"""Rows made from records, and dead letters for whatever cannot be read (pure)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import orjson

from schemas.contracts import decode_record
from sinks.rows import (
    ALIASES,
    COLUMNS,
    DEAD_LETTERS,
    JOURNEYS,
    MERGES,
    REJECTIONS,
    TOUCHPOINTS,
    message_rows,
    rows_of,
)
from tests.schemas.support import HASHER
from tests.sinks import story as s

RECEIVED = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def _row(table: str, record: dict[str, object]) -> dict[str, object]:
    made = dict(rows_of(decode_record(orjson.dumps(record))))
    return dict(zip(COLUMNS[table], made[table], strict=True))


def test_every_row_fits_its_columns() -> None:
    for record in s.story():
        for table, row in rows_of(decode_record(orjson.dumps(record))):
            assert len(row) == len(COLUMNS[table]), table


def test_touchpoint_row() -> None:
    a2 = next(r for r in s.story() if r.get("event_id") == "a2")
    row = _row(TOUCHPOINTS, a2)
    assert row["customer_id"] == s.COOKIE
    assert row["occurred_at"] == datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
    assert row["identity_kinds"] == ["anonymous_id"] and row["identity_values"] == ["ck-1"]
    # property values as text: strings as they are, other scalars as JSON
    assert row["properties"] == {
        "product_id": "P-7",
        "price": "120.0",
        "in_stock": "true",
        "promo": "null",
    }
    assert (row["value"], row["currency"], row["previous_channel"]) == (None, "", "web")


def test_late_touch_row_has_no_place() -> None:
    f4 = next(r for r in s.story() if r.get("event_id") == "f4")
    row = _row(TOUCHPOINTS, f4)
    assert (row["late"], row["session_id"], row["journey_id"], row["position"]) == (
        True,
        "",
        "",
        0,
    )


def test_journey_row_flattens_conversion_and_switches() -> None:
    final = [
        r for r in s.story() if r.get("journey_id") == "JA" and r["record_type"] == "journey_update"
    ][-1]
    row = _row(JOURNEYS, final)
    assert row["channel_path"] == ["web", "app", "pos"]
    assert row["switch_from"] == ["web", "app"] and row["switch_to"] == ["app", "pos"]
    assert row["switch_event_ids"] == ["a3", "a5"]
    assert (row["conversion_event_id"], row["conversion_value"], row["conversion_currency"]) == (
        "a5",
        Decimal("120.00"),
        "EUR",
    )
    assert row["final"] is True and row["superseded_by"] == ""


def test_a_merge_is_also_an_alias() -> None:
    record = next(r for r in s.story() if r["record_type"] == "merge")
    tables = [table for table, _ in rows_of(decode_record(orjson.dumps(record)))]
    assert tables == [MERGES, ALIASES]
    rejection = next(r for r in s.story() if r["record_type"] == "link_rejection")
    assert _row(REJECTIONS, rejection)["other_customer_id"] == s.ANN


def test_a_record_that_breaks_the_contract_becomes_a_dead_letter() -> None:
    bad = {**next(r for r in s.story() if r["record_type"] == "session_update"), "touch_count": -1}
    made, refused = message_rows(
        "journeys.sessions", 2, 77, orjson.dumps(bad), received_at=RECEIVED, hasher=HASHER
    )
    assert refused
    [(table, row)] = made
    letter = dict(zip(COLUMNS[DEAD_LETTERS], row, strict=True))
    assert table == DEAD_LETTERS
    assert (letter["stage"], letter["reason"], letter["error_locs"]) == (
        "sink",
        "invalid_value",
        ["touch_count"],
    )
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "journeys.sessions",
        2,
        77,
    )
    assert letter["received_at"] == RECEIVED
    assert base64.b64decode(str(letter["original_b64"])) == orjson.dumps(bad)


def test_dead_letters_keep_no_clear_pii() -> None:
    raw = orjson.dumps({"record_type": "identity_link", "note": "mail ann@example.com"})
    made, refused = message_rows("identity.links", 0, 1, raw, received_at=RECEIVED, hasher=HASHER)
    assert refused
    letter = dict(zip(COLUMNS[DEAD_LETTERS], made[0][1], strict=True))
    assert b"ann@example.com" not in base64.b64decode(str(letter["original_b64"]))
    assert letter["original_redacted"] is True
    assert "ann@example.com" not in str(letter["error"])


def test_empty_messages_and_tombstones() -> None:
    made, refused = message_rows(
        "journeys.touchpoints", 0, 5, b"", received_at=RECEIVED, hasher=HASHER
    )
    assert refused and dict(zip(COLUMNS[DEAD_LETTERS], made[0][1], strict=True))["reason"] == (
        "not_json"
    )
    # an erasure's tombstone on a compacted topic: nothing to store, nothing wrong
    assert message_rows("journeys.updates", 0, 6, None, received_at=RECEIVED, hasher=HASHER) == (
        [],
        False,
    )


def test_dead_letters_of_earlier_stages_are_routed_by_content() -> None:
    made, refused = message_rows(
        "any.topic.name", 0, 9, s.ingest_dead_letter(), received_at=RECEIVED, hasher=HASHER
    )
    assert not refused
    letter = dict(zip(COLUMNS[DEAD_LETTERS], made[0][1], strict=True))
    assert (letter["stage"], letter["reason"], letter["error_locs"]) == (
        "ingest",
        "missing_field",
        ["type"],
    )
    broken = orjson.dumps({"dead_letter_id": "x", "stage": "ingest"})
    made, refused = message_rows(
        "touchpoints.deadletter", 0, 10, broken, received_at=RECEIVED, hasher=HASHER
    )
    letter = dict(zip(COLUMNS[DEAD_LETTERS], made[0][1], strict=True))
    assert refused and (letter["stage"], letter["reason"]) == ("sink", "missing_field")
