"""The core's input and configuration reject bad values with the field and the reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from omnijourney.exceptions import ConfigurationError, InvalidTouch
from streams.core.config import CoreConfig, JourneyRule
from streams.core.model import Identifier, Touch
from tests.core.support import T0

ID = (Identifier("anonymous_id", "a1"),)


def make(**changes: object) -> Touch:
    fields: dict[str, object] = {
        "event_id": "e1",
        "channel": "web",
        "type": "page_view",
        "occurred_at": T0,
        "received_at": T0,
        "identities": ID,
    }
    fields.update(changes)
    return Touch(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"occurred_at": datetime(2024, 5, 6, 9)}, "occurred_at"),  # noqa: DTZ001 (the point)
        ({"received_at": datetime(2024, 5, 6, 9)}, "received_at"),  # noqa: DTZ001
        ({"occurred_at": datetime(1969, 12, 31, tzinfo=UTC)}, "occurred_at"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": " e1"}, "event_id"),
        ({"channel": ""}, "channel"),
        ({"identities": ()}, "identities"),
        ({"identities": ("anonymous_id:a1",)}, "identities"),
        ({"value": Decimal("10")}, "currency"),
        ({"value": Decimal("10"), "currency": "eur"}, "currency"),
        ({"value": Decimal("NaN"), "currency": "EUR"}, "value"),
        ({"currency": "EUR"}, "currency"),
        ({"properties": {"basket": ["sku-1"]}}, "properties.basket"),
    ],
)
def test_bad_touches_are_refused_naming_the_field(changes: dict, field: str) -> None:
    with pytest.raises(InvalidTouch) as caught:
        make(**changes)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_unknown_identifier_kinds_and_empty_values_are_refused() -> None:
    with pytest.raises(InvalidTouch, match=r"identities.kind: unknown identifier kind 'email'"):
        Identifier("email", "someone@example.org")
    with pytest.raises(InvalidTouch, match=r"identities.device_id: must be a non-empty string"):
        Identifier("device_id", "")


def test_times_are_kept_in_utc_and_identities_deduplicated() -> None:
    paris = timezone(timedelta(hours=2))
    item = make(
        occurred_at=datetime(2024, 5, 6, 11, 0, tzinfo=paris),
        identities=(ID[0], Identifier("device_id", "d"), ID[0]),
    )
    assert item.occurred_at == T0 and item.occurred_at.tzinfo == UTC
    assert item.occurred_us == int(T0.timestamp()) * 1_000_000
    assert item.identities == (ID[0], Identifier("device_id", "d"))


def test_properties_are_read_only() -> None:
    item = make(properties={"store_id": "S1"})
    with pytest.raises(TypeError):
        item.properties["store_id"] = "S2"  # type: ignore[index]


def test_a_touch_survives_its_json_form() -> None:
    item = make(value=Decimal("59.90"), currency="EUR", properties={"store_id": "S1", "n": 2})
    assert Touch.from_dict(item.to_dict()) == item


def test_a_touch_from_json_names_missing_and_naive_fields() -> None:
    data = make().to_dict()
    del data["channel"]
    with pytest.raises(InvalidTouch, match=r"^channel: missing"):
        Touch.from_dict(data)
    data = make().to_dict() | {"occurred_at": "2024-05-06T09:00:00"}
    with pytest.raises(InvalidTouch, match=r"^occurred_at: naive datetime"):
        Touch.from_dict(data)


def test_the_default_configuration_is_consistent() -> None:
    config = CoreConfig()
    assert config.max_lateness == timedelta(hours=24)
    assert config.channel("web").session_gap == timedelta(minutes=30)
    assert config.channel("kiosk") == config.default_channel
    assert config.identifiers["customer_id"].max_per_customer == 1
    order = sorted(config.identifiers, key=lambda kind: -config.identifiers[kind].priority)
    assert order[0] == "customer_id" and order[-1] == "anonymous_id"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"identifiers": {}}, "identifiers: no rule for"),
        ({"dedupe_horizon": timedelta(hours=1)}, "dedupe_horizon"),
        ({"journeys": JourneyRule(follow_up_types=frozenset({"purchase"}))}, "journeys"),
        ({"journeys": JourneyRule(inactivity=timedelta(0))}, "journeys"),
    ],
)
def test_inconsistent_configurations_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CoreConfig(**changes)


def test_a_channel_rule_needs_a_positive_gap() -> None:
    web = CoreConfig().channel("web")
    with pytest.raises(ConfigurationError, match=r"channels\.web"):
        CoreConfig(channels={"web": replace(web, session_gap=timedelta(0))})
