"""One request decided without I/O: records, or a refusal naming index, field and reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from omnijourney.collector.intake import Admission, Refusal, admit
from omnijourney.collector.keys import Grant
from schemas.pii import PiiHasher
from schemas.validation import decode_touchpoint
from tests.pipeline_support import CLEAR_EMAIL, fresh

HASHER = PiiHasher(b"omnijourney-test-key-0123456789abcdef", "US")
RECEIVED = datetime(2024, 5, 1, 8, 0, 7, tzinfo=UTC)
WEB = Grant("web-shop", frozenset({"web"}))
POS = Grant("till", frozenset({"pos"}))


def _admit(body: Any, grant: Grant = WEB, **limits: int) -> Admission | Refusal:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return admit(
        raw,
        grant=grant,
        received_at=RECEIVED,
        hasher=HASHER,
        max_events=limits.get("max_events", 500),
        max_bytes=limits.get("max_bytes", 1 << 20),
    )


def _refusal(result: Admission | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_batch_becomes_records_on_the_channel_topic_keyed_and_hashed() -> None:
    events = [fresh("web", "login"), fresh("web", "page_view")]
    result = _admit({"batch": events, "sent_at": "2024-05-01T10:00:05+02:00"})
    assert isinstance(result, Admission)
    assert [r.topic for r in result.records] == ["touchpoints.web", "touchpoints.web"]
    login = result.records[0]
    assert login.key == b"customer_id:CUST-000123"
    assert CLEAR_EMAIL not in login.value and CLEAR_EMAIL not in login.key
    assert b"email_hash" in login.value
    # the producer input form: the device clock is kept, the edge fields are not
    value = orjson.loads(login.value)
    assert "received_at" not in value
    assert value["occurred_at"] == "2024-05-01T08:00:00Z"
    assert value["event_id"] == events[0]["event_id"]


def test_single_event_and_array_bodies() -> None:
    one = _admit(fresh("pos", "purchase"), POS)
    assert isinstance(one, Admission) and len(one.records) == 1
    array = _admit([fresh("pos", "store_visit"), fresh("pos", "return")], POS)
    assert isinstance(array, Admission) and len(array.records) == 2


def test_skew_is_corrected_from_sent_at() -> None:
    event = fresh("web", "page_view")
    # the client clock is one hour ahead: the event happened 5 s before it was sent
    event["occurred_at"] = "2024-05-01T09:00:02Z"
    event["sent_at"] = "2024-05-01T09:00:07Z"
    result = _admit([event])
    assert isinstance(result, Admission)
    value = orjson.loads(result.records[0].value)
    touchpoint = decode_touchpoint(orjson.dumps({**value, "received_at": RECEIVED.isoformat()}))
    assert touchpoint.occurred_at == RECEIVED - timedelta(seconds=5)


def test_forbidden_channel_names_index_and_channel() -> None:
    refusal = _refusal(_admit([fresh("pos", "purchase"), fresh("web", "page_view")], POS))
    assert refusal.status == 403
    assert refusal.body.reason == "forbidden_channel"
    [error] = refusal.body.errors
    assert (error.index, error.loc, error.reason) == (1, "channel", "forbidden")
    assert "'web'" in error.msg and "till" in error.msg


def test_forbidden_comes_before_validation() -> None:
    broken_web = {"channel": "web", "type": "page_view"}
    refusal = _refusal(_admit([broken_web], POS))
    assert refusal.status == 403


def test_invalid_events_name_index_field_and_reason_and_nothing_is_admitted() -> None:
    good = fresh("web", "page_view")
    bad = fresh("web", "page_view")
    del bad["properties"]["url"]
    placeholder = fresh("web", "search")
    placeholder["identities"] = [{"kind": "anonymous_id", "value": "undefined"}]
    refusal = _refusal(_admit([good, bad, placeholder]))
    assert refusal.status == 422
    assert refusal.body.reason == "invalid_events"
    found = {(e.index, e.loc, e.reason) for e in refusal.body.errors}
    assert (1, "properties.url", "missing_field") in found
    assert (2, "identities.0.value", "blocked_identifier") in found
    assert all(e.index != 0 for e in refusal.body.errors)


def test_unknown_channel_is_a_validation_error_not_a_403() -> None:
    event = {**fresh("web", "page_view"), "channel": "fax"}
    refusal = _refusal(_admit([event]))
    assert refusal.status == 422
    assert refusal.body.errors[0].reason == "unknown_channel"


def test_errors_never_echo_clear_pii() -> None:
    event = fresh("web", "login")
    event["identities"].append({"kind": "phone", "value": "jane.roe@example.com"})
    refusal = _refusal(_admit([event]))
    assert CLEAR_EMAIL not in orjson.dumps(refusal.body.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "not_json"),
        (b'"a string"', 400, "not_object"),
        (b"[]", 400, "empty_batch"),
        (b'{"batch": 3}', 400, "wrong_types"),
        (b'{"batch": [], "extra": 1}', 400, "unknown_field"),
    ],
)
def test_malformed_bodies(body: bytes, status: int, reason: str) -> None:
    refusal = _refusal(_admit(body))
    assert (refusal.status, refusal.body.reason) == (status, reason)
    assert refusal.body.errors and refusal.body.errors[0].index is None


def test_limits_give_413() -> None:
    events = [fresh("web", "page_view") for _ in range(3)]
    assert _refusal(_admit(events, max_events=2)).status == 413
    assert _refusal(_admit(events, max_bytes=1000)).status == 413


def test_error_list_is_bounded() -> None:
    refusal = _refusal(_admit([{"channel": "web"}] * 300))
    assert refusal.status == 422
    assert len(refusal.body.errors) == 200 and refusal.body.errors_truncated
