"""Where a raw message goes (pure): validated touchpoint or dead letter, never an exception."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest

import streams.routing as routing
from schemas.deadletter import DeadLetter, SourcePosition
from schemas.pii import PiiHasher
from schemas.topics import DEADLETTER_TOPIC, VALID_TOPIC
from schemas.validation import decode_touchpoint
from streams.routing import LOG_APPEND_TIME, received_at, route
from tests.pipeline_support import CLEAR_EMAIL, fresh

HASHER = PiiHasher(b"omnijourney-test-key-0123456789abcdef", "US")
NOW = datetime(2024, 5, 1, 8, 0, 7, tzinfo=UTC)


def _source(topic: str = "touchpoints.web", offset: int = 42) -> SourcePosition:
    return SourcePosition(topic=topic, partition=1, offset=offset)


def _letter(value: bytes) -> DeadLetter:
    return DeadLetter.model_validate_json(value)


def test_valid_message_goes_to_the_valid_topic_keyed_and_stamped() -> None:
    event = fresh("web", "login")
    record = route(orjson.dumps(event), source=_source(), received=NOW, hasher=HASHER)
    assert record.topic == VALID_TOPIC
    assert record.key == b"customer_id:CUST-000123"
    touchpoint = decode_touchpoint(record.value)
    assert touchpoint.event_id == event["event_id"]
    assert touchpoint.received_at == NOW
    assert CLEAR_EMAIL not in record.value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "not_json"),
        (b"", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'{"channel": "fax", "type": "x"}', "unknown_channel"),
    ],
)
def test_invalid_message_becomes_a_dead_letter_with_its_source(
    raw: bytes | None, reason: str
) -> None:
    record = route(raw, source=_source(), received=NOW, hasher=HASHER)
    assert record.topic == DEADLETTER_TOPIC
    assert record.key == b"touchpoints.web:1"
    letter = _letter(record.value)
    assert (letter.reason, letter.stage) == (reason, "ingest")
    assert letter.source == _source()
    assert letter.original_sha256 == hashlib.sha256(raw or b"").hexdigest()


def test_event_on_another_channels_topic_is_refused() -> None:
    event = fresh("web", "page_view")
    record = route(
        orjson.dumps(event), source=_source("touchpoints.pos"), received=NOW, hasher=HASHER
    )
    assert record.topic == DEADLETTER_TOPIC
    letter = _letter(record.value)
    assert letter.reason == "invalid_value"
    assert [(e.loc, e.reason) for e in letter.errors] == [("channel", "invalid_value")]
    assert letter.event_id == event["event_id"]


def test_clear_pii_from_a_foreign_producer_is_hashed_on_ingest() -> None:
    event = fresh("email", "sent")  # identities: a clear email
    record = route(
        orjson.dumps(event), source=_source("touchpoints.email"), received=NOW, hasher=HASHER
    )
    assert record.topic == VALID_TOPIC
    assert CLEAR_EMAIL not in record.value and record.key.startswith(b"email_hash:")


def test_a_bug_after_validation_still_yields_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(routing, "partition_key", broken)
    record = route(
        orjson.dumps(fresh("web", "page_view")), source=_source(), received=NOW, hasher=HASHER
    )
    assert record.topic == DEADLETTER_TOPIC
    assert _letter(record.value).reason == "processing_error"


def test_when_even_the_dead_letter_fails_a_bare_one_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(routing, "triage", broken)
    monkeypatch.setattr(routing, "dead_letter", broken)
    raw = orjson.dumps(fresh("web", "login"))
    record = route(raw, source=_source(), received=NOW, hasher=HASHER)
    letter = _letter(record.value)
    assert (record.topic, letter.reason, letter.original()) == (
        DEADLETTER_TOPIC,
        "processing_error",
        b"",
    )
    assert letter.original_size == len(raw)


def test_received_at_comes_from_the_broker_clock_only() -> None:
    stamp = datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC)
    seconds = stamp.timestamp()
    assert received_at(seconds, LOG_APPEND_TIME, now=NOW) == stamp
    assert received_at(seconds, 0, now=NOW) == NOW  # CreateTime: the producer's clock
    assert received_at(None, LOG_APPEND_TIME, now=NOW) == NOW
    assert received_at(0.0, LOG_APPEND_TIME, now=NOW) == NOW  # an unset clock
    assert received_at(1e12, LOG_APPEND_TIME, now=NOW) == NOW
    later = NOW + timedelta(hours=1)
    assert received_at(seconds, LOG_APPEND_TIME, now=later) == stamp
