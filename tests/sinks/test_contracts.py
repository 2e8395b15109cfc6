"""The public output contract: topic names, record models, errors naming field and reason."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from omnijourney.exceptions import InvalidRecord
from omnijourney.settings import SinkSettings
from schemas.contracts import (
    PUBLIC_TOPICS,
    RECORD_MODELS,
    SINK_TOPICS,
    TOPIC_OF_RECORD,
    EnrichedTouchpointRecord,
    JourneyUpdateRecord,
    decode_record,
    public_record,
)
from schemas.export import json_schemas
from tests.sinks import story as s
from tests.sinks.support import CORE_SAMPLE

# The keys `to_dict()` of each record of streams.core.records writes, in its order.
CORE_KEYS = {
    "enriched_touchpoint": [
        "record_type", "schema_version", "event_id", "channel", "type", "occurred_at",
        "received_at", "identities", "consent", "value", "currency", "properties",
        "customer_id", "session_id", "journey_id", "position", "previous_channel", "late",
        "version",
    ],
    "session_update": [
        "record_type", "schema_version", "session_id", "customer_id", "journey_id", "channel",
        "started_at", "ended_at", "touch_count", "first_event_id", "last_event_id", "version",
        "supersedes", "superseded_by",
    ],
    "journey_update": [
        "record_type", "schema_version", "journey_id", "customer_id", "status", "final",
        "started_at", "ended_at", "first_channel", "last_channel", "first_event_id",
        "last_event_id", "touch_count", "session_ids", "channel_path", "switch_count",
        "switches", "conversion_event_id", "conversion_type", "conversion_channel",
        "converted_at", "conversion_value", "conversion_currency", "version", "supersedes",
        "superseded_by", "consent",
    ],
    "anonymous_touchpoint": [
        "record_type", "schema_version", "event_id", "channel", "type", "occurred_at",
        "received_at", "consent", "value", "currency", "properties",
    ],
    "identity_link": [
        "record_type", "schema_version", "customer_id", "identifier_kind", "identifier_value",
        "event_id",
    ],
    "merge": [
        "record_type", "schema_version", "survivor_id", "alias_id", "identifier_kind",
        "identifier_value", "rule", "event_id",
    ],
    "link_rejection": [
        "record_type", "schema_version", "customer_id", "identifier_kind", "identifier_value",
        "rule", "event_id", "other_customer_id",
    ],
}  # fmt: skip


def _one(record_type: str) -> dict[str, Any]:
    return next(r for r in s.story() if r["record_type"] == record_type)


def test_topics() -> None:
    assert PUBLIC_TOPICS == (
        "journeys.touchpoints",
        "journeys.sessions",
        "journeys.updates",
        "identity.links",
        "identity.merges",
    )
    assert (*PUBLIC_TOPICS, "touchpoints.deadletter") == SINK_TOPICS
    assert SinkSettings().topics == SINK_TOPICS  # the sink's default reads all of them
    assert set(TOPIC_OF_RECORD) == set(RECORD_MODELS) == set(CORE_KEYS)


@pytest.mark.parametrize("record_type", sorted(CORE_KEYS))
def test_models_read_exactly_the_core_fields(record_type: str) -> None:
    model = RECORD_MODELS[record_type]
    assert set(model.model_fields) == set(CORE_KEYS[record_type])
    data = _one(record_type)
    assert list(data) == CORE_KEYS[record_type]  # the story is shaped as the core writes
    record = decode_record(orjson.dumps(data))
    assert record.record_type == record_type


def test_records_of_the_real_core_decode() -> None:
    # tests/sinks/data/core_sample.jsonl: to_dict() of a simulated run of streams.core
    lines = CORE_SAMPLE.read_bytes().splitlines()
    kinds = {decode_record(line).record_type for line in lines}
    assert kinds == {"enriched_touchpoint", "session_update", "journey_update"} | {
        "identity_link",
        "merge",
    }
    for line in lines:
        data = orjson.loads(line)
        assert list(data) == CORE_KEYS[data["record_type"]]


def test_live_core_matches_the_contract() -> None:
    records = pytest.importorskip("streams.core.records")
    model = pytest.importorskip("streams.core.model")
    from datetime import UTC, datetime
    from decimal import Decimal

    ident = model.Identifier("customer_id", "x")
    when = datetime(2026, 3, 1, tzinfo=UTC)
    touch = model.Touch(
        "e", "pos", "purchase", when, when, (ident,), value=Decimal("1.5"), currency="EUR"
    )
    samples = [
        records.EnrichedTouchpoint(touch, "c1", "s1", "j1", 1, None, False, 1),
        records.SessionUpdate("s1", "c1", "j1", "pos", when, when, 1, "e", "e", 1),
        records.JourneyUpdate(
            "j1", "c1", "converted", False, when, when, "pos", "pos", "e", "e", 1, ("s1",),
            ("pos",), (), records.Conversion("e", "purchase", "pos", when, Decimal(1), "EUR"), 1,
        ),
        records.IdentityLink("c1", ident, "e"),
        records.Merge("c1", "c2", ident, "link:customer_id", "e"),
        records.LinkRejection("c1", ident, "limit:customer_id", "e", None),
    ]  # fmt: skip
    for sample in samples:
        data = sample.to_dict()
        assert list(data) == CORE_KEYS[data["record_type"]]
        decode_record(orjson.dumps(data))


def test_unknown_fields_are_ignored() -> None:
    data = {**_one("enriched_touchpoint"), "added_in_1_1": {"anything": [1, 2]}}
    record = decode_record(orjson.dumps(data))
    assert isinstance(record, EnrichedTouchpointRecord)
    assert record.event_id == "a1"


def test_values_are_typed() -> None:
    record = decode_record(orjson.dumps(_one("journey_update")))
    assert isinstance(record, JourneyUpdateRecord)
    assert record.started_at.utcoffset() is not None and record.started_at.utcoffset().seconds == 0
    a5 = next(r for r in s.story() if r.get("event_id") == "a5")
    touch = decode_record(orjson.dumps(a5))
    assert isinstance(touch, EnrichedTouchpointRecord)
    assert str(touch.value) == "120.00" and touch.currency == "EUR"


def _refused(data: Any) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        decode_record(data if isinstance(data, bytes) else orjson.dumps(data))
    return caught.value


@pytest.mark.parametrize(
    ("change", "reason", "loc"),
    [
        ({"customer_id": None}, "wrong_types", "customer_id"),
        ({"customer_id": 7}, "wrong_types", "customer_id"),
        ({"occurred_at": "2026-03-02T10:00:00"}, "naive_timestamp", "occurred_at"),
        ({"occurred_at": "yesterday"}, "wrong_types", "occurred_at"),
        ({"position": 0}, "invalid_value", "position"),
        ({"value": "12.34567"}, "invalid_value", "value"),
        ({"currency": "eur"}, "invalid_value", "currency"),
        ({"identities": []}, "invalid_value", "identities"),
        ({"version": -1}, "invalid_value", "version"),
        ({"late": "no"}, "wrong_types", "late"),
    ],
)
def test_bad_fields_are_named(change: dict[str, Any], reason: str, loc: str) -> None:
    error = _refused({**_one("enriched_touchpoint"), **change})
    assert error.reason == reason
    assert [e["loc"] for e in error.errors] == [loc]
    assert "invalid record" in str(error)


def test_missing_field() -> None:
    data = _one("session_update")
    del data["journey_id"]
    error = _refused(data)
    assert (error.reason, error.errors[0]["loc"]) == ("missing_field", "journey_id")


def test_head_is_checked_first() -> None:
    assert _refused(b"[1, 2").reason == "not_json"
    assert _refused(b"[1, 2]").reason == "not_object"
    newer = {**_one("merge"), "schema_version": 2, "survivor_id": None}
    assert (_refused(newer).reason, _refused(newer).errors[0]["loc"]) == (
        "schema_version",
        "schema_version",
    )
    assert _refused({**_one("merge"), "record_type": "coupon"}).reason == "unknown_type"
    no_type = _one("merge")
    del no_type["record_type"]
    assert _refused(no_type).reason == "missing_field"


def test_the_older_customer_survives_a_merge() -> None:
    error = _refused({**_one("merge"), "survivor_id": "c9", "alias_id": "c1"})
    assert error.reason == "invalid_value"
    assert "survivor_id must sort before alias_id" in error.errors[0]["msg"]


def test_errors_never_echo_the_input() -> None:
    error = _refused({**_one("identity_link"), "identifier_value": {"email": "ann@example.com"}})
    assert "ann@example.com" not in str(error)
    assert "ann@example.com" not in repr(error.errors)


def test_public_record_topic_and_key() -> None:
    merge = public_record(_one("merge"))
    assert (merge.topic, merge.key) == ("identity.merges", s.COOKIE.encode())
    rejection = public_record(_one("link_rejection"))
    assert (rejection.topic, rejection.key) == ("identity.merges", s.CID.encode())
    touch = public_record(_one("enriched_touchpoint"))
    assert (touch.topic, touch.key) == ("journeys.touchpoints", s.COOKIE.encode())
    assert orjson.loads(touch.value) == _one("enriched_touchpoint")
    with pytest.raises(InvalidRecord):
        public_record({**_one("journey_update"), "status": "lost"})


@pytest.mark.parametrize("record_type", sorted(CORE_KEYS))
def test_exported_json_schema_accepts_the_records(record_type: str) -> None:
    schema = json_schemas()[f"{record_type.replace('_', '-')}.schema.json"]
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for record in s.story():
        if record["record_type"] == record_type:
            assert [e.message for e in validator.iter_errors(record)] == []
    assert TOPIC_OF_RECORD[record_type] in schema["description"]
    assert json.dumps(schema)  # serializable as written by `schemas export`
