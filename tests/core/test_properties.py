"""Hypothesis properties: arrival order, duplicates and replays do not change the result."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.config import CoreConfig
from streams.core.model import Identifier, Touch
from streams.core.stitcher import Stitcher
from tests.core.support import (
    T0,
    dump,
    final_view,
    offline_groups,
    simulate,
    simulated_groups,
    timeline_view,
)

CHANNELS = ("web", "app", "pos", "callcenter", "email")
TYPES = ("page_view", "product_view", "add_to_cart", "purchase", "call_started", "return")
ME = Identifier("anonymous_id", "me")
CONFIG = CoreConfig()
LATENESS = {name: CONFIG.channel(name).allowed_lateness for name in CHANNELS}
# Short windows, so that sealing happens close to the lateness horizon and is put to the test.
SHORT = CoreConfig(
    journeys=replace(
        CONFIG.journeys,
        inactivity=timedelta(hours=3),
        follow_up_window=timedelta(0),
        max_duration=timedelta(days=2),
    )
)
configs = st.sampled_from([CONFIG, SHORT])
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Gaps between touches that cross every rule: within a session, past a session gap, past the
# largest lateness (so journeys get sealed while later touches arrive), past the inactivity.
gaps = st.one_of(
    st.integers(0, 600),
    st.integers(0, 3 * 3600),
    st.integers(0, 3 * 86400),
    st.integers(6 * 86400, 9 * 86400),
).map(lambda seconds: timedelta(seconds=seconds))


def _touch(number: int, channel: str, type_: str, at: timedelta, ids: tuple) -> Touch:
    return Touch(f"e{number:03d}", channel, type_, T0 + at, T0 + at, ids)


@st.composite
def histories(draw: st.DrawFn, max_size: int = 25) -> list[Touch]:
    """One customer's touches, in event-time order."""
    at, out = timedelta(0), []
    for number in range(draw(st.integers(1, max_size))):
        at += draw(gaps)
        channel, type_ = draw(st.sampled_from(CHANNELS)), draw(st.sampled_from(TYPES))
        out.append(_touch(number, channel, type_, at, (ME,)))
    return out


@st.composite
def within_lateness(draw: st.DrawFn, history: list[Touch]) -> list[Touch]:
    """An arrival order where each touch is at most its channel's lateness behind.

    Each touch arrives at occurred_at + a delay up to its lateness; the watermark when it
    arrives is at most its arrival time, so it is never more than its lateness behind.
    """
    arrivals = []
    for index, item in enumerate(history):
        limit = int(LATENESS[item.channel].total_seconds())
        delay = draw(st.one_of(st.integers(0, limit), st.just(limit)))  # as late as allowed
        arrivals.append((item.occurred_at + timedelta(seconds=delay), draw(st.integers()), index))
    return [history[index] for _, _, index in sorted(arrivals)]


@given(st.data())
@PROPERTY
def test_any_arrival_order_within_the_lateness_gives_the_event_time_result(
    data: st.DataObject,
) -> None:
    stitcher = Stitcher(data.draw(configs))
    history = data.draw(histories())
    arrived = data.draw(within_lateness(history))
    in_order = final_view(simulate(history, stitcher=stitcher).records)
    assert final_view(simulate(arrived, stitcher=stitcher).records) == in_order


@given(st.data())
@PROPERTY
def test_delivering_events_twice_changes_nothing(data: st.DataObject) -> None:
    stitcher = Stitcher(data.draw(configs))
    history = data.draw(histories())
    arrived = data.draw(within_lateness(history))
    horizon = CONFIG.dedupe_horizon
    with_copies = list(arrived)
    for item in data.draw(st.lists(st.sampled_from(arrived), max_size=6)):
        # A copy arrives any time after the original while the id is remembered (the horizon).
        first = with_copies.index(item) + 1
        last = first
        watermark = max(x.occurred_at for x in with_copies[:first])
        while last < len(with_copies):
            watermark = max(watermark, with_copies[last].occurred_at)
            if watermark - item.occurred_at > horizon:
                break
            last += 1
        with_copies.insert(data.draw(st.integers(first, last)), item)
    once = dump(simulate(arrived, stitcher=stitcher).records)
    assert dump(simulate(with_copies, stitcher=stitcher).records) == once


@st.composite
def linked(draw: st.DrawFn, span: timedelta, max_touches: int = 30) -> list[Touch]:
    """Touches of a few people carrying 1-3 of their identifiers (within every limit)."""
    persons = []
    for person in range(draw(st.integers(1, 4))):
        ids = [Identifier("anonymous_id", f"a{person}.{i}") for i in range(draw(st.integers(1, 3)))]
        for kind, value in (("customer_id", f"C{person}"), ("loyalty_id", f"L{person}"),
                            ("device_id", f"d{person}")):  # fmt: skip
            if draw(st.booleans()):
                ids.append(Identifier(kind, value))
        persons.append(ids)
    seconds = int(span.total_seconds())
    out = []
    for number in range(draw(st.integers(1, max_touches))):
        ids = draw(st.sampled_from(persons))
        carried = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))
        at = timedelta(seconds=draw(st.integers(0, seconds)))
        channel, type_ = draw(st.sampled_from(CHANNELS)), draw(st.sampled_from(TYPES))
        out.append(_touch(number, channel, type_, at, tuple(carried)))
    return out


@given(linked(timedelta(days=2)), st.sampled_from([1, 3, 8]), st.integers(0, 2**32))
@PROPERTY
def test_the_same_input_gives_the_same_outputs_byte_for_byte(
    touches: list[Touch], partitions: int, seed: int
) -> None:
    first = dump(simulate(touches, partitions, seed, Stitcher()).records)
    assert dump(simulate(touches, partitions, seed, Stitcher()).records) == first


# Every channel may be two days late and touches span one day: nothing is ever late or sealed,
# so whatever order merges happen in, each person's journeys must be those of all its touches.
PATIENT = CoreConfig(
    channels={name: replace(CONFIG.channel(name), allowed_lateness=timedelta(days=2))
              for name in CHANNELS},
)  # fmt: skip


@given(linked(timedelta(days=1)), st.sampled_from([1, 3, 8]), st.integers(0, 2**32))
@PROPERTY
def test_merges_combine_open_sessions_and_journeys_in_event_time(
    touches: list[Touch], partitions: int, seed: int
) -> None:
    stitcher = Stitcher(PATIENT)
    sim = simulate(touches, partitions, seed, stitcher)
    groups = offline_groups(touches)
    assert simulated_groups(sim) == groups

    def name_of(group: frozenset[str]) -> str:
        return " ".join(sorted(group))

    def name_of_customer(customer: str) -> str:
        state = sim.customer(sim.resolve(customer))
        assert state is not None and state.profile is not None
        return " ".join(identifier.key for identifier in state.profile.identifiers())

    expected: dict = {}
    for group in groups:
        members = [t for t in touches if t.identities[0].key in group]
        expected.update(timeline_view(members, name_of(group), stitcher))
    assert final_view(sim.records, name_of_customer) == expected, f"seed {seed}"
