"""The emitter for direct Kafka producers: topic, key and a value holding no clear PII.

`send` talks to Kafka, so it is tested against the real broker with the ingest stage.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from omnijourney.exceptions import InvalidTouchpoint
from schemas.emitter import Emitter
from schemas.topics import CHANNEL_TOPICS, DEADLETTER_TOPIC, topic_for
from schemas.validation import parse_touchpoint
from tests.schemas.support import HASHER, example

NOW = datetime(2024, 5, 1, 8, 0, 5, tzinfo=UTC)


def test_topic_names() -> None:
    assert topic_for("pos") == "touchpoints.pos"
    assert set(CHANNEL_TOPICS.values()) == {
        "touchpoints.web",
        "touchpoints.app",
        "touchpoints.pos",
        "touchpoints.callcenter",
        "touchpoints.email",
        "touchpoints.sms",
        "touchpoints.crm",
    }
    assert DEADLETTER_TOPIC == "touchpoints.deadletter"


def test_record_is_topic_key_value_without_clear_pii() -> None:
    event = example("pos", "purchase")
    topic, key, value = Emitter(HASHER).record(event, now=NOW)
    assert topic == "touchpoints.pos"
    assert key == b"loyalty_id:LOY-4410-2231"
    assert b"jane.roe" not in value and b"example.com" not in value
    payload = orjson.loads(value)
    assert "received_at" not in payload
    assert payload["identities"][1]["kind"] == "email_hash"


def test_ingest_reads_the_record_to_the_same_touchpoint() -> None:
    emitter = Emitter(HASHER)
    event = example("app", "screen_view")
    event.pop("sent_at")
    event["occurred_at"] = "2024-05-01T09:00:00Z"  # producer clock 1 h ahead
    emitted = emitter.touchpoint(event, now=NOW + timedelta(hours=1))
    record = emitter.record(event, now=NOW + timedelta(hours=1))
    received = NOW + timedelta(seconds=1)
    ingested = parse_touchpoint(record.value, received_at=received, hasher=HASHER)
    assert ingested.event_id == emitted.event_id
    assert ingested.identities == emitted.identities
    # the ingest stage removes the producer's hour of skew
    assert ingested.occurred_at == received - timedelta(seconds=5)
    assert ingested.device_occurred_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def test_event_id_and_sent_at_are_filled_in() -> None:
    event = example("web", "page_view")
    del event["event_id"], event["sent_at"]
    touchpoint = Emitter(HASHER).touchpoint(event, now=NOW)
    assert len(touchpoint.event_id) == 36
    assert touchpoint.sent_at == NOW


def test_python_datetimes_are_accepted_and_naive_ones_refused() -> None:
    event = example("web", "page_view")
    event["occurred_at"] = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert Emitter(HASHER).touchpoint(event, now=NOW).occurred_at <= NOW
    event["occurred_at"] = datetime(2024, 5, 1, 8, 0)  # noqa: DTZ001 - the point
    with pytest.raises(InvalidTouchpoint) as caught:
        Emitter(HASHER).record(event, now=NOW)
    assert caught.value.reason == "naive_timestamp"
