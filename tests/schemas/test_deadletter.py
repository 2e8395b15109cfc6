"""Dead letters: reason, stage, source, original bytes (redacted), never for outages."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime

import orjson
import pytest

from omnijourney.exceptions import (
    InvalidTouchpoint,
    NaiveDatetime,
    PoisonMessage,
    TransientError,
)
from schemas.deadletter import (
    STAGE_INGEST,
    DeadLetter,
    SourcePosition,
    dead_letter,
    dead_letter_record,
    encode_dead_letter,
    redact_original,
    triage,
)
from schemas.limits import MAX_DEADLETTER_ORIGINAL_BYTES
from schemas.topics import DEADLETTER_TOPIC
from schemas.validation import classify
from tests.schemas.support import HASHER, RECEIVED, example

SOURCE = SourcePosition(topic="touchpoints.web", partition=2, offset=1041)


def letter(raw: bytes, source: SourcePosition | None = SOURCE) -> DeadLetter:
    result = triage(raw, received_at=RECEIVED, hasher=HASHER, source=source)
    assert isinstance(result, DeadLetter)
    return result


def test_valid_message_is_not_a_dead_letter() -> None:
    result = triage(orjson.dumps(example("web", "page_view")), received_at=RECEIVED, hasher=HASHER)
    assert not isinstance(result, DeadLetter)


def test_not_json_keeps_reason_stage_source_and_bytes() -> None:
    raw = b"\x00\x01 definitely not json"
    dl = letter(raw)
    assert dl.reason == "not_json"
    assert dl.stage == STAGE_INGEST
    assert dl.source == SOURCE
    assert dl.received_at == RECEIVED
    assert dl.original() == raw
    assert dl.original_size == len(raw)
    assert not dl.original_truncated and not dl.original_redacted
    assert dl.errors[0].reason == "not_json"
    assert dl.channel is None and dl.event_id is None


def test_field_errors_and_identity_of_the_message_are_kept() -> None:
    event = example("pos", "purchase")
    del event["properties"]["till_id"]
    dl = letter(orjson.dumps(event))
    assert dl.reason == "missing_field"
    assert [(e.loc, e.reason) for e in dl.errors] == [("properties.till_id", "missing_field")]
    assert dl.channel == "pos"
    assert dl.event_id == event["event_id"]
    assert "properties.till_id" in dl.error


def test_dead_letter_id_is_one_per_source_message() -> None:
    raw = b"nope"
    assert letter(raw).dead_letter_id == letter(raw).dead_letter_id
    moved = SourcePosition(topic="touchpoints.web", partition=2, offset=1042)
    assert letter(raw, moved).dead_letter_id != letter(raw).dead_letter_id


def test_clear_pii_of_a_refused_message_is_hashed_in_the_copy() -> None:
    event = example("pos", "purchase")
    event["occurred_at"] = "2024-05-01T10:00:00"  # naive: refused
    event["properties"]["custom"] = {"note": "call 202-555-0143"}
    dl = letter(orjson.dumps(event))
    assert dl.reason == "naive_timestamp"
    assert dl.original_redacted
    kept = dl.original()
    assert b"jane.roe" not in kept and b"555-0143" not in kept
    identities = orjson.loads(kept)["identities"]
    assert identities[1] == {
        "kind": "email_hash",
        "value": HASHER.email_hash("jane.roe@example.com"),
    }
    assert b"jane.roe" not in encode_dead_letter(dl)


def test_unhashable_clear_pii_is_masked() -> None:
    event = example("email", "sent")
    event["identities"] = [{"kind": "email", "value": "jane..roe@example.com"}]
    dl = letter(orjson.dumps(event))
    assert dl.reason == "no_identifier"
    assert orjson.loads(dl.original())["identities"] == [{"kind": "email", "value": "[email]"}]


def test_pii_in_non_json_bytes_is_scrubbed_byte_for_byte_elsewhere() -> None:
    raw = b"\xff garbage jane.roe@example.com \xfe tail"
    redacted, changed = redact_original(raw, HASHER)
    assert changed
    assert redacted == b"\xff garbage [email] \xfe tail"


def test_huge_message_is_truncated_but_measured() -> None:
    raw = b"[" + b"1," * MAX_DEADLETTER_ORIGINAL_BYTES + b"1]"
    dl = letter(raw)
    assert dl.reason == "too_large"
    assert dl.original_truncated
    assert dl.original_size == len(raw)
    assert len(dl.original()) == MAX_DEADLETTER_ORIGINAL_BYTES
    assert len(encode_dead_letter(dl)) < 1_000_000  # fits Kafka's default message size


def test_unexpected_exception_becomes_a_processing_error() -> None:
    dl = dead_letter(
        b"{}",
        KeyError("boom"),
        stage="resolve",
        received_at=RECEIVED,
        hasher=HASHER,
        source=SOURCE,
    )
    assert dl.reason == "processing_error"
    assert dl.stage == "resolve"
    assert "KeyError" in dl.error


def test_other_poison_messages_are_rejected() -> None:
    assert classify(PoisonMessage("bad state")).reason == "rejected"


@pytest.mark.parametrize(
    "exc", [TransientError("broker down"), asyncio.CancelledError(), KeyboardInterrupt()]
)
def test_outages_and_interruptions_are_never_dead_letters(exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        dead_letter(b"{}", exc, stage="ingest", received_at=RECEIVED, hasher=HASHER)


def test_classification_of_invalid_touchpoint() -> None:
    exc = InvalidTouchpoint(
        "unknown_channel", [{"loc": "channel", "msg": "x", "reason": "unknown_channel"}]
    )
    result = classify(exc)
    assert result.reason == "unknown_channel"
    assert result.errors[0]["loc"] == "channel"


def test_record_goes_to_the_dead_letter_topic_keyed_by_source_partition() -> None:
    dl = letter(b"nope")
    record = dead_letter_record(dl)
    assert record.topic == DEADLETTER_TOPIC == "touchpoints.deadletter"
    assert record.key == b"touchpoints.web:2"
    decoded = DeadLetter.model_validate_json(record.value)
    assert decoded == dl
    assert base64.b64decode(orjson.loads(record.value)["original_b64"]) == b"nope"


def test_foreign_reasons_of_other_stages_still_make_a_dead_letter() -> None:
    exc = InvalidTouchpoint(
        "merge_conflict", [{"loc": "x", "msg": "y", "reason": "merge_conflict"}]
    )
    dl = dead_letter(b"{}", exc, stage="resolve", received_at=RECEIVED, hasher=HASHER)
    assert dl.reason == "rejected"
    assert dl.errors[0].reason == "rejected"


def test_exception_whose_message_fails_still_makes_a_dead_letter() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    dl = dead_letter(b"{}", Weird(), stage="ingest", received_at=RECEIVED, hasher=HASHER)
    assert dl.reason == "processing_error"
    assert "Weird" in dl.error


def test_naive_received_at_is_the_callers_bug() -> None:
    with pytest.raises(NaiveDatetime):
        triage(b"{}", received_at=datetime(2024, 5, 1), hasher=HASHER)  # noqa: DTZ001
