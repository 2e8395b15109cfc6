"""Request bodies of one event or a batch, validated per event."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from omnijourney.exceptions import InvalidTouchpoint
from schemas.limits import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from schemas.validation import parse_batch
from tests.schemas.support import HASHER, RECEIVED, example


def batch(body: object) -> bytes:
    return orjson.dumps(body)


def test_single_event_body() -> None:
    result = parse_batch(batch(example("web", "page_view")), received_at=RECEIVED, hasher=HASHER)
    assert [index for index, _ in result.accepted] == [0]
    assert result.rejected == ()


def test_array_body_reports_refused_events_by_index() -> None:
    good, bad = example("web", "page_view"), example("web", "search")
    bad["identities"] = [{"kind": "anonymous_id", "value": "undefined"}]
    result = parse_batch(batch([good, bad, good, "junk"]), received_at=RECEIVED, hasher=HASHER)
    assert [index for index, _ in result.accepted] == [0, 2]
    assert [(r.index, r.reason) for r in result.rejected] == [
        (1, "no_identifier"),
        (3, "not_object"),
    ]
    assert {"loc": "identities.0.value", "reason": "blocked_identifier"} in [
        {"loc": e["loc"], "reason": e["reason"]} for e in result.rejected[0].errors
    ]


def test_batch_level_sent_at_applies_to_events_without_one() -> None:
    own, inherits = example("app", "screen_view"), example("app", "screen_view")
    own["sent_at"] = "2024-05-01T08:00:05Z"
    inherits.pop("sent_at")
    for event in (own, inherits):
        event["occurred_at"] = "2024-05-01T08:00:00Z"
    body = {"batch": [own, inherits], "sent_at": "2024-05-01T08:00:06Z"}
    result = parse_batch(batch(body), received_at=RECEIVED, hasher=HASHER)
    (_, first), (_, second) = result.accepted
    assert first.sent_at == datetime(2024, 5, 1, 8, 0, 5, tzinfo=UTC)
    assert second.sent_at == datetime(2024, 5, 1, 8, 0, 6, tzinfo=UTC)
    assert second.occurred_at == datetime(2024, 5, 1, 8, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "reason", "loc"),
    [
        (b"x" * (MAX_BATCH_BYTES + 1), "too_large", ""),
        (b"{", "not_json", ""),
        (b"42", "not_object", ""),
        (batch({"batch": [], "extra": 1}), "unknown_field", "extra"),
        (batch({"batch": {}}), "wrong_types", "batch"),
        (batch([{}] * (MAX_BATCH_EVENTS + 1)), "too_large", "batch"),
    ],
)
def test_body_level_problems_refuse_the_whole_request(body: bytes, reason: str, loc: str) -> None:
    with pytest.raises(InvalidTouchpoint) as caught:
        parse_batch(body, received_at=RECEIVED, hasher=HASHER)
    assert caught.value.reason == reason
    assert caught.value.errors[0]["loc"] == loc


def test_oversized_event_in_a_batch_is_refused_alone() -> None:
    big = example("web", "page_view")
    big["properties"]["custom"] = {f"k{n}": "v" * 2000 for n in range(40)}
    result = parse_batch(
        batch([example("web", "page_view"), big]), received_at=RECEIVED, hasher=HASHER
    )
    assert len(result.accepted) == 1
    assert [(r.index, r.reason) for r in result.rejected] == [(1, "too_large")]


def test_empty_batch_is_accepted_as_nothing() -> None:
    result = parse_batch(batch({"batch": []}), received_at=RECEIVED, hasher=HASHER)
    assert result.accepted == () and result.rejected == ()
