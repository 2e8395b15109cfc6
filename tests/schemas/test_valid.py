"""Valid touchpoints of every channel and type validate, encode and read back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from schemas.examples import examples
from schemas.touchpoint import MODELS, encode_input, encode_touchpoint
from schemas.validation import decode_touchpoint, parse_touchpoint
from tests.schemas.support import HASHER, RECEIVED, example, parse

ALL = [(e["channel"], e["type"]) for e in examples()]


def test_examples_cover_every_channel_and_type() -> None:
    assert sorted(ALL) == sorted((c, t) for c, types in MODELS.items() for t in types)


@pytest.mark.parametrize(("channel", "type_"), ALL)
def test_example_validates_to_its_model(channel: str, type_: str) -> None:
    touchpoint = parse(example(channel, type_))
    assert type(touchpoint) is MODELS[channel][type_]  # type: ignore[index]
    assert touchpoint.received_at == RECEIVED
    assert touchpoint.schema_version == 1
    assert {i.kind for i in touchpoint.identities} <= {
        "anonymous_id",
        "device_id",
        "customer_id",
        "loyalty_id",
        "email_hash",
        "phone_hash",
    }


@pytest.mark.parametrize(("channel", "type_"), ALL)
def test_validated_touchpoint_reads_back_unchanged(channel: str, type_: str) -> None:
    touchpoint = parse(example(channel, type_))
    assert decode_touchpoint(encode_touchpoint(touchpoint)) == touchpoint


@pytest.mark.parametrize(("channel", "type_"), ALL)
def test_input_form_revalidates_to_the_same_touchpoint(channel: str, type_: str) -> None:
    touchpoint = parse(example(channel, type_))
    again = parse_touchpoint(encode_input(touchpoint), received_at=RECEIVED, hasher=HASHER)
    assert again == touchpoint


def test_pos_purchase_keeps_money_exact() -> None:
    touchpoint = parse(example("pos", "purchase"))
    assert touchpoint.channel == "pos"
    assert touchpoint.type == "purchase"
    props = touchpoint.properties
    assert props.total.amount == Decimal("49.90")
    assert props.total.currency == "EUR"
    assert props.lines[0].unit_price.amount == Decimal("39.90")
    assert props.lines[1].quantity == Decimal(2)
    assert props.store_id == "S-017"
    assert props.till_id == "T-03"
    encoded = orjson.loads(encode_touchpoint(touchpoint))
    assert encoded["properties"]["total"] == {"amount": "49.90", "currency": "EUR"}


def test_currency_code_is_read_case_insensitively() -> None:
    event = example("web", "checkout")
    event["properties"]["total"]["currency"] = " eur "
    for line in event["properties"]["lines"]:
        line["unit_price"]["currency"] = "Eur"
    touchpoint = parse(event)
    assert touchpoint.properties.total.currency == "EUR"


def test_timestamps_are_normalized_to_utc() -> None:
    event = example("web", "page_view")
    del event["sent_at"]
    event["occurred_at"] = "2024-05-01T10:00:00+02:00"
    touchpoint = parse(event)
    assert touchpoint.occurred_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert touchpoint.occurred_at.utcoffset() is not None
    assert orjson.loads(encode_touchpoint(touchpoint))["occurred_at"] == "2024-05-01T08:00:00Z"


def test_epoch_milliseconds_are_accepted_as_utc() -> None:
    event = example("app", "screen_view")
    del event["sent_at"]
    event["occurred_at"] = 1714550400000  # 2024-05-01T08:00:00Z
    assert parse(event).occurred_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_schema_version_defaults_and_minor_strings_read_as_major() -> None:
    event = example("web", "search")
    del event["schema_version"]
    assert parse(event).schema_version == 1
    event["schema_version"] = "1.3"
    assert parse(event).schema_version == 1


def test_duplicate_identifiers_are_kept_once() -> None:
    event = example("web", "page_view")
    event["identities"] = event["identities"] * 3
    assert len(parse(event).identities) == 1


def test_identifier_values_are_stripped() -> None:
    event = example("pos", "loyalty_scan")
    event["identities"] = [{"kind": "loyalty_id", "value": "  LOY-1  "}]
    assert parse(event).identities[0].value == "LOY-1"


def test_producer_set_edge_fields_are_ignored() -> None:
    event = example("web", "page_view")
    event["received_at"] = "2030-01-01T00:00:00Z"
    event["device_occurred_at"] = "2001-01-01T00:00:00Z"
    touchpoint = parse(event)
    assert touchpoint.received_at == RECEIVED
    assert touchpoint.device_occurred_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_custom_properties_hold_scalars() -> None:
    event = example("web", "page_view")
    event["properties"]["custom"] = {"ab_test": "B", "tier": 3, "ratio": 0.5, "vip": True}
    touchpoint = parse(event)
    assert touchpoint.properties.custom == {"ab_test": "B", "tier": 3, "ratio": 0.5, "vip": True}


def test_validated_touchpoint_is_frozen() -> None:
    touchpoint = parse(example("web", "page_view"))
    with pytest.raises(ValidationError):
        touchpoint.channel = "app"  # type: ignore[misc]


def test_defaults_for_types_without_required_properties() -> None:
    event = example("app", "login")
    event.pop("properties", None)
    touchpoint = parse(event)
    assert touchpoint.properties.method is None
    assert touchpoint.consent.marketing is False
