"""Client clock-skew correction (Segment / Snowplow style) and its place in validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnijourney.exceptions import InvalidTouchpoint, NaiveDatetime
from schemas.clock import correct_skew
from schemas.touchpoint import encode_touchpoint
from schemas.validation import decode_touchpoint
from tests.schemas.support import RECEIVED, example, parse

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_offset_of_the_client_clock_is_removed() -> None:
    # the device clock runs 1 h ahead: it says the event was 10 s before it sent
    occurred = T0 + timedelta(hours=1)
    sent = occurred + timedelta(seconds=10)
    received = T0 + timedelta(seconds=12)
    assert correct_skew(occurred, received_at=received, sent_at=sent) == T0 + timedelta(seconds=2)


def test_without_sent_at_the_device_time_stands() -> None:
    assert correct_skew(T0, received_at=T0 + timedelta(days=3)) == T0


def test_an_event_never_happens_after_it_was_received() -> None:
    future = T0 + timedelta(hours=5)
    assert correct_skew(future, received_at=T0) == T0
    # sent before it occurred: only a broken clock does that
    assert correct_skew(T0, received_at=T0, sent_at=T0 - timedelta(minutes=1)) == T0


def test_naive_inputs_are_refused() -> None:
    with pytest.raises(NaiveDatetime):
        correct_skew(datetime(2024, 5, 1), received_at=T0)  # noqa: DTZ001 - the point


@given(
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1)),  # noqa: DTZ001
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=400)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=1)),
)
def test_corrected_time_keeps_the_devices_interval_before_sending(
    base: datetime, before_send: timedelta, skew: timedelta, transit: timedelta
) -> None:
    true_occurred = base.replace(tzinfo=UTC)
    true_sent = true_occurred + before_send
    received = true_sent + transit
    device = true_occurred + skew  # the device's clock is off by `skew`
    corrected = correct_skew(device, received_at=received, sent_at=true_sent + skew)
    assert corrected == true_occurred + transit  # exact up to the network transit
    assert corrected <= received


def test_parse_corrects_and_keeps_the_device_time() -> None:
    event = example("app", "screen_view")
    event["occurred_at"] = "2024-05-01T09:00:00Z"  # device 1 h ahead
    event["sent_at"] = "2024-05-01T09:00:05Z"
    touchpoint = parse(event)
    assert touchpoint.occurred_at == RECEIVED - timedelta(seconds=5)
    assert touchpoint.device_occurred_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert touchpoint.sent_at == datetime(2024, 5, 1, 9, 0, 5, tzinfo=UTC)


def test_no_correction_leaves_no_device_time() -> None:
    event = example("pos", "purchase")
    event.pop("sent_at")
    event["occurred_at"] = "2024-04-30T18:00:00Z"  # a till uploading yesterday's receipts
    touchpoint = parse(event)
    assert touchpoint.occurred_at == datetime(2024, 4, 30, 18, 0, tzinfo=UTC)
    assert touchpoint.device_occurred_at is None


def test_future_device_time_without_sent_at_is_clamped_to_receipt() -> None:
    event = example("web", "page_view")
    event.pop("sent_at")
    event["occurred_at"] = "2024-05-02T08:00:00Z"
    touchpoint = parse(event)
    assert touchpoint.occurred_at == RECEIVED
    assert touchpoint.device_occurred_at == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)


def test_reading_a_validated_touchpoint_does_not_correct_twice() -> None:
    event = example("app", "screen_view")
    event["occurred_at"] = "2024-05-01T09:00:00Z"
    event["sent_at"] = "2024-05-01T09:00:05Z"
    touchpoint = parse(event)
    again = decode_touchpoint(encode_touchpoint(touchpoint))
    assert again.occurred_at == touchpoint.occurred_at
    assert again.device_occurred_at == touchpoint.device_occurred_at


def test_skew_that_lands_before_2000_is_refused_at_sent_at() -> None:
    event = example("web", "page_view")
    event["occurred_at"] = "2000-01-02T00:00:00Z"
    event["sent_at"] = "2099-01-01T00:00:00Z"
    with pytest.raises(InvalidTouchpoint) as caught:
        parse(event)
    assert caught.value.reason == "invalid_timestamp"
    assert caught.value.errors[0]["loc"] == "sent_at"


def test_corrected_time_is_encoded_in_utc() -> None:
    event = example("web", "page_view")
    data = orjson.loads(encode_touchpoint(parse(event)))
    assert data["occurred_at"] == "2024-05-01T08:00:02Z"
    assert data["device_occurred_at"] == "2024-05-01T08:00:00Z"
