"""Invalid touchpoints are refused with one error type naming the field and the reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from omnijourney.exceptions import InvalidTouchpoint, NaiveDatetime
from schemas.limits import MAX_EVENT_BYTES, MAX_IDENTITIES
from schemas.touchpoint import encode_touchpoint
from schemas.validation import decode_touchpoint, parse_touchpoint
from tests.schemas.support import HASHER, RECEIVED, example, parse

Event = dict[str, Any]


def ids(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"kind": kind, "value": value} for kind, value in pairs]


def setting(path: str, value: Any) -> Callable[[Event], None]:
    """A mutation that sets a dotted path (list indexes as numbers)."""

    def mutate(event: Event) -> None:
        *parents, last = path.split(".")
        node: Any = event
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def deleting(path: str) -> Callable[[Event], None]:
    def mutate(event: Event) -> None:
        *parents, last = path.split(".")
        node: Any = event
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


CASES: list[tuple[str, str, Callable[[Event], None], str, str, str]] = [
    # (name, example "channel/type", mutation, event reason, error loc, error reason)
    ("placeholder only id", "web/page_view",
     setting("identities", ids(("anonymous_id", "null"))),
     "no_identifier", "identities.0.value", "blocked_identifier"),
    ("placeholder second id", "web/page_view",
     setting("identities", ids(("anonymous_id", "ajs-1"), ("customer_id", "undefined"))),
     "blocked_identifier", "identities.1.value", "blocked_identifier"),
    ("placeholder case and spaces", "web/page_view",
     setting("identities", ids(("anonymous_id", "ajs-1"), ("customer_id", "  AnOnYmOuS "))),
     "blocked_identifier", "identities.1.value", "blocked_identifier"),
    ("all-zero uuid", "app/screen_view",
     setting("identities", ids(("device_id", "00000000-0000-0000-0000-000000000000"))),
     "no_identifier", "identities.0.value", "blocked_identifier"),
    ("minus one", "pos/loyalty_scan", setting("identities", ids(("loyalty_id", "-1"))),
     "no_identifier", "identities.0.value", "blocked_identifier"),
    ("empty id", "web/page_view", setting("identities", ids(("anonymous_id", "   "))),
     "no_identifier", "identities.0.value", "blocked_identifier"),
    ("no identities", "web/page_view", setting("identities", []),
     "no_identifier", "identities", "no_identifier"),
    ("identities missing", "web/page_view", deleting("identities"),
     "missing_field", "identities", "missing_field"),
    ("too many identities", "web/page_view",
     setting("identities", ids(*[("anonymous_id", f"a-{n}") for n in range(MAX_IDENTITIES + 1)])),
     "invalid_value", "identities", "invalid_value"),
    ("unknown identifier kind", "web/page_view",
     setting("identities", ids(("anonymous_id", "a-1"), ("fax_id", "123-4"))),
     "invalid_value", "identities.1.kind", "invalid_value"),
    ("numeric id", "pos/loyalty_scan",
     setting("identities", [{"kind": "loyalty_id", "value": 44102231}]),
     "no_identifier", "identities.0.value", "wrong_types"),
    ("email hash not a digest", "web/page_view",
     setting("identities", ids(("anonymous_id", "a-1"), ("email_hash", "abc123def"))),
     "invalid_value", "identities.1.value", "invalid_value"),
    ("clear email as customer id", "web/page_view",
     setting("identities", ids(("customer_id", "jane.roe@example.com"))),
     "no_identifier", "identities.0.value", "clear_pii"),
    ("malformed email", "email/sent", setting("identities", ids(("email", "jane.roe.example.com"))),
     "no_identifier", "identities.0.value", "invalid_pii"),
    ("placeholder email", "email/sent",
     setting("identities", ids(("email", "noemail@example.com"))),
     "no_identifier", "identities.0.value", "invalid_pii"),
    ("malformed phone", "sms/sent", setting("identities", ids(("phone", "555-12"))),
     "no_identifier", "identities.0.value", "invalid_pii"),
    ("naive occurred_at", "web/page_view", setting("occurred_at", "2024-05-01T10:00:00"),
     "naive_timestamp", "occurred_at", "naive_timestamp"),
    ("naive sent_at", "web/page_view", setting("sent_at", "2024-05-01 10:00:05"),
     "naive_timestamp", "sent_at", "naive_timestamp"),
    ("epoch zero", "web/page_view", setting("occurred_at", "1970-01-01T00:00:00Z"),
     "invalid_timestamp", "occurred_at", "invalid_timestamp"),
    ("words for a time", "web/page_view", setting("occurred_at", "yesterday"),
     "wrong_types", "occurred_at", "wrong_types"),
    ("occurred_at missing", "pos/purchase", deleting("occurred_at"),
     "missing_field", "occurred_at", "missing_field"),
    ("unknown channel", "web/page_view", setting("channel", "fax"),
     "unknown_channel", "channel", "unknown_channel"),
    ("channel case", "web/page_view", setting("channel", "Web"),
     "unknown_channel", "channel", "unknown_channel"),
    ("channel missing", "web/page_view", deleting("channel"),
     "missing_field", "channel", "missing_field"),
    ("channel not a string", "web/page_view", setting("channel", 5),
     "wrong_types", "channel", "wrong_types"),
    ("sms has no open", "sms/sent", setting("type", "open"),
     "unknown_type", "type", "unknown_type"),
    ("type of another channel", "pos/purchase", setting("type", "page_view"),
     "unknown_type", "type", "unknown_type"),
    ("future major", "web/page_view", setting("schema_version", 2),
     "schema_version", "schema_version", "schema_version"),
    ("future major string", "web/page_view", setting("schema_version", "2.0"),
     "schema_version", "schema_version", "schema_version"),
    ("version zero", "web/page_view", setting("schema_version", 0),
     "schema_version", "schema_version", "schema_version"),
    ("version garbage", "web/page_view", setting("schema_version", "v1"),
     "schema_version", "schema_version", "schema_version"),
    ("version boolean", "web/page_view", setting("schema_version", True),
     "schema_version", "schema_version", "schema_version"),
    ("unknown envelope field", "web/page_view", setting("colour", "blue"),
     "unknown_field", "colour", "unknown_field"),
    ("unknown property", "web/page_view", setting("properties.colour", "blue"),
     "unknown_field", "properties.colour", "unknown_field"),
    ("event id placeholder", "web/page_view", setting("event_id", "null"),
     "invalid_value", "event_id", "invalid_value"),
    ("event id missing", "web/page_view", deleting("event_id"),
     "missing_field", "event_id", "missing_field"),
    ("page view without url", "web/page_view", deleting("properties.url"),
     "missing_field", "properties.url", "missing_field"),
    ("search without query", "web/search", setting("properties.query", ""),
     "invalid_value", "properties.query", "invalid_value"),
    ("till missing", "pos/purchase", deleting("properties.till_id"),
     "missing_field", "properties.till_id", "missing_field"),
    ("store missing", "pos/store_visit", deleting("properties.store_id"),
     "missing_field", "properties.store_id", "missing_field"),
    ("empty basket", "pos/purchase", setting("properties.lines", []),
     "invalid_value", "properties.lines", "invalid_value"),
    ("amount not a number", "pos/purchase", setting("properties.total.amount", "lots"),
     "wrong_types", "properties.total.amount", "wrong_types"),
    ("amount sub-cent noise", "web/purchase", setting("properties.total.amount", 0.1 + 0.2),
     "invalid_value", "properties.total.amount", "invalid_value"),
    ("negative amount", "web/purchase", setting("properties.total.amount", "-5"),
     "invalid_value", "properties.total.amount", "invalid_value"),
    ("NaN amount", "web/purchase", setting("properties.total.amount", "NaN"),
     "invalid_value", "properties.total.amount", "invalid_value"),
    ("unknown currency", "web/purchase", setting("properties.total.currency", "XYZ"),
     "invalid_value", "properties.total.currency", "invalid_value"),
    ("mixed currencies", "pos/purchase", setting("properties.lines.1.unit_price.currency", "USD"),
     "invalid_value", "properties.lines.1.unit_price.currency", "invalid_value"),
    ("zero quantity", "pos/purchase", setting("properties.lines.0.quantity", 0),
     "invalid_value", "properties.lines.0.quantity", "invalid_value"),
    ("negative duration", "callcenter/call_ended", setting("properties.duration_s", -5),
     "invalid_value", "properties.duration_s", "invalid_value"),
    ("unknown outcome", "callcenter/call_ended", setting("properties.outcome", "happy"),
     "invalid_value", "properties.outcome", "invalid_value"),
    ("campaign id missing", "email/click", deleting("properties.campaign_id"),
     "missing_field", "properties.campaign_id", "missing_field"),
    ("loyalty scan without card", "pos/loyalty_scan",
     setting("identities", ids(("customer_id", "CUST-1"))),
     "no_identifier", "identities", "no_identifier"),
    ("crm update without customer id", "crm/customer_update",
     setting("identities", ids(("loyalty_id", "LOY-1"))),
     "no_identifier", "identities", "no_identifier"),
    ("login with only a cookie", "web/login", setting("identities", ids(("anonymous_id", "a-1"))),
     "no_identifier", "identities", "no_identifier"),
    ("nested custom value", "web/page_view", setting("properties.custom", {"x": {"y": 1}}),
     "wrong_types", "properties.custom.x", "wrong_types"),
    ("properties not an object", "web/page_view", setting("properties", [1, 2]),
     "wrong_types", "properties", "wrong_types"),
    ("consent not boolean", "web/page_view", setting("consent.marketing", "maybe"),
     "wrong_types", "consent.marketing", "wrong_types"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "mutate", "reason", "loc", "field_reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_invalid_event_names_field_and_reason(
    source: str, mutate: Callable[[Event], None], reason: str, loc: str, field_reason: str
) -> None:
    event = example(*source.split("/"))
    mutate(event)
    with pytest.raises(InvalidTouchpoint) as caught:
        parse(event)
    assert caught.value.reason == reason
    assert {"loc": loc, "reason": field_reason} in [
        {"loc": e["loc"], "reason": e["reason"]} for e in caught.value.errors
    ], caught.value.errors
    assert all(e["msg"] for e in caught.value.errors)


def test_all_field_errors_are_reported_at_once() -> None:
    event = example("pos", "purchase")
    del event["properties"]["till_id"]
    event["occurred_at"] = "2024-05-01T10:00:00"
    event["identities"].append({"kind": "customer_id", "value": "null"})
    with pytest.raises(InvalidTouchpoint) as caught:
        parse(event)
    locs = {e["loc"] for e in caught.value.errors}
    assert {"properties.till_id", "occurred_at", "identities.2.value"} <= locs
    assert caught.value.reason == "blocked_identifier"  # the highest-precedence reason


def test_error_message_is_clear_for_naive_timestamps() -> None:
    event = example("web", "page_view")
    event["occurred_at"] = "2024-05-01T10:00:00"
    with pytest.raises(InvalidTouchpoint) as caught:
        parse(event)
    assert "timezone" in caught.value.errors[0]["msg"]
    assert "occurred_at" in str(caught.value)


def test_error_message_for_future_schema_version_says_what_to_do() -> None:
    event = example("web", "page_view")
    event["schema_version"] = 7
    with pytest.raises(InvalidTouchpoint) as caught:
        parse(event)
    assert caught.value.errors == (
        {
            "loc": "schema_version",
            "msg": "schema_version 7 is newer than this omnijourney understands (up to 1); "
            "upgrade the pipeline before producing it",
            "reason": "schema_version",
        },
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not_json"),
        (b"{not json", "not_json"),
        (b"\xff\xfe{}", "not_json"),
        (b"[]", "not_object"),
        (b'"page_view"', "not_object"),
        (b"null", "not_object"),
        (b"{}", "missing_field"),
    ],
)
def test_undecodable_messages(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidTouchpoint) as caught:
        parse_touchpoint(raw, received_at=RECEIVED, hasher=HASHER)
    assert caught.value.reason == reason


def test_too_large_message_is_refused_before_parsing() -> None:
    event = example("web", "page_view")
    event["properties"]["custom"] = {"blob": "x" * 100}
    raw = orjson.dumps(event) + b" " * MAX_EVENT_BYTES
    with pytest.raises(InvalidTouchpoint) as caught:
        parse_touchpoint(raw, received_at=RECEIVED, hasher=HASHER)
    assert caught.value.reason == "too_large"


def test_oversized_text_field_is_refused() -> None:
    event = example("web", "search")
    event["properties"]["query"] = "q" * 5000
    with pytest.raises(InvalidTouchpoint) as caught:
        parse(event)
    assert caught.value.errors[0]["loc"] == "properties.query"


def test_clear_pii_kinds_are_refused_past_the_edge() -> None:
    event = example("email", "sent")
    event["received_at"] = "2024-05-01T08:00:07Z"
    with pytest.raises(InvalidTouchpoint) as caught:
        decode_touchpoint(orjson.dumps(event))
    assert caught.value.reason == "no_identifier"
    assert {"loc": "identities.0.kind", "reason": "clear_pii"} in [
        {"loc": e["loc"], "reason": e["reason"]} for e in caught.value.errors
    ]


def test_validated_topic_messages_need_received_at() -> None:
    touchpoint = parse(example("web", "page_view"))
    data = orjson.loads(encode_touchpoint(touchpoint))
    del data["received_at"]
    with pytest.raises(InvalidTouchpoint) as caught:
        decode_touchpoint(orjson.dumps(data))
    assert caught.value.errors[0]["loc"] == "received_at"


def test_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(NaiveDatetime):
        parse_touchpoint(
            orjson.dumps(example("web", "page_view")),
            received_at=datetime(2024, 5, 1, 8, 0),  # noqa: DTZ001 - the point of the test
            hasher=HASHER,
        )


def test_invalid_touchpoint_does_not_chain_the_input() -> None:
    event = example("email", "sent")
    event["properties"]["colour"] = "blue"
    with pytest.raises(InvalidTouchpoint) as caught:
        parse(event)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_received_at_utc_conversion() -> None:
    from zoneinfo import ZoneInfo

    received = datetime(2024, 5, 1, 10, 0, 7, tzinfo=ZoneInfo("Europe/Paris"))
    touchpoint = parse_touchpoint(
        orjson.dumps(example("web", "page_view")), received_at=received, hasher=HASHER
    )
    assert touchpoint.received_at == RECEIVED
    assert touchpoint.received_at.tzinfo == UTC
