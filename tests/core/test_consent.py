"""Consent in the core (decision 0016): the latest consent per customer, whatever the order;
touches without analytics consent are counted anonymously and never linked or stored."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.model import Consent, Identifier, Touch
from streams.core.records import (
    AnonymousTouchpoint,
    ConsentChange,
    EnrichedTouchpoint,
    IdentityLink,
    JourneyUpdate,
    Record,
)
from streams.core.simulation import Simulator
from streams.core.stitcher import Stitcher
from tests.core.support import T0, hours, minutes, offline_groups, simulate

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHANNELS = ("web", "app", "pos", "callcenter")
TYPES = ("page_view", "product_view", "purchase", "call_started")
GRANTED = Consent(analytics=True, personalization=True, marketing=True)
DEFAULT = Consent()
consents = st.builds(Consent, st.just(True), st.booleans(), st.booleans())
COOKIE = Identifier("anonymous_id", "cookie-1")
CARD = Identifier("loyalty_id", "L-1")


def _touch(
    event_id: str, at: timedelta, consent: Consent, *ids: Identifier, channel: str = "web"
) -> Touch:
    return Touch(event_id, channel, "page_view", T0 + at, T0 + at, ids, consent)


def _latest(touches: list[Touch]) -> Consent:
    return max(touches, key=lambda t: (t.occurred_us, t.event_id)).consent


def _journey_versions(records: list[Record]) -> dict[str, JourneyUpdate]:
    latest: dict[str, JourneyUpdate] = {}
    for record in records:
        if type(record) is JourneyUpdate:
            known = latest.get(record.journey_id)
            if known is None or known.version < record.version:
                latest[record.journey_id] = record
    return latest


@st.composite
def people(draw: st.DrawFn) -> list[Touch]:
    """Touches of a few people with analytics consent and any other consent, any order."""
    persons = []
    for person in range(draw(st.integers(1, 3))):
        ids = [Identifier("anonymous_id", f"a{person}.{i}") for i in range(draw(st.integers(1, 2)))]
        if draw(st.booleans()):
            ids.append(Identifier("loyalty_id", f"L{person}"))
        persons.append(ids)
    out = []
    for number in range(draw(st.integers(1, 20))):
        ids = draw(st.sampled_from(persons))
        carried = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=2, unique=True))
        at = timedelta(seconds=draw(st.integers(0, 2 * 86400)))
        channel, type_ = draw(st.sampled_from(CHANNELS)), draw(st.sampled_from(TYPES))
        out.append(
            Touch(f"e{number:03d}", channel, type_, T0 + at, T0 + at, tuple(carried),
                  draw(consents))
        )  # fmt: skip
    return draw(st.permutations(out))


@given(people(), st.sampled_from([1, 3, 8]), st.integers(0, 2**32), st.booleans())
@PROPERTY
def test_each_customer_keeps_the_latest_consent_by_event_time_whatever_the_order(
    touches: list[Touch], partitions: int, seed: int, roundtrip: bool
) -> None:
    sim = simulate(touches, partitions, seed, roundtrip=roundtrip)
    latest = _journey_versions(sim.records)
    for group in offline_groups(touches):
        members = [t for t in touches if t.identities[0].key in group]
        owner = sim.owner(members[0].identities[0].key)
        assert owner is not None
        state = sim.customer(owner)
        assert state is not None and state.timeline is not None
        expected = _latest(members)
        # a merge keeps the latest of both sides; so does any arrival order
        assert state.timeline.consent == expected, f"seed {seed} P={partitions}"
        for journey in state.timeline.open_journeys():
            # the newest published version of every open journey carries it
            assert latest[journey.journey_id].consent == expected


def test_an_older_consent_arriving_late_does_not_replace_a_newer_one() -> None:
    late = _touch("e1", minutes(0), GRANTED, COOKIE)
    newer = _touch("e2", minutes(5), DEFAULT, COOKIE)
    sim = simulate([newer, late])
    [customer] = list(sim.live_customers())
    assert customer.timeline is not None and customer.timeline.consent == DEFAULT
    changes = [r for r in sim.records if isinstance(r, ConsentChange)]
    assert changes == []  # the default never changed: the granted consent is older


def test_a_journey_update_says_the_customers_consent() -> None:
    sim = simulate([_touch("e1", minutes(0), GRANTED, COOKIE)])
    journeys = [r for r in sim.records if isinstance(r, JourneyUpdate)]
    assert journeys and all(j.consent == GRANTED for j in journeys)
    assert journeys[-1].to_dict()["consent"] == GRANTED.to_dict()
    [change] = [r for r in sim.records if isinstance(r, ConsentChange)]
    assert (change.previous, change.consent, change.event_id) == (DEFAULT, GRANTED, "e1")


def test_without_analytics_consent_a_touch_is_anonymous_and_stores_nothing() -> None:
    refused = replace(GRANTED, analytics=False)
    touch = _touch("e1", minutes(0), refused, COOKIE, CARD)
    sim = simulate([touch])
    [record] = sim.records
    assert isinstance(record, AnonymousTouchpoint)
    data = record.to_dict()
    assert "identities" not in data and "customer_id" not in data
    assert "cookie-1" not in json.dumps(data) and "L-1" not in json.dumps(data)
    assert list(sim.identifier_states()) == [] and list(sim.customer_states()) == []


def test_links_are_made_only_from_consented_evidence() -> None:
    refused = Consent(analytics=False)
    sim = simulate(
        [
            _touch("e1", minutes(0), GRANTED, COOKIE),
            _touch("e2", minutes(1), GRANTED, CARD, channel="pos"),
            _touch("e3", minutes(2), refused, COOKIE, CARD),  # would merge the two
        ]
    )
    assert len(list(sim.live_customers())) == 2
    assert not any(isinstance(r, IdentityLink) and r.event_id == "e3" for r in sim.records)
    assert not any(isinstance(r, EnrichedTouchpoint) and r.touch.event_id == "e3"
                   for r in sim.records)  # fmt: skip


def test_withdrawing_consent_without_analytics_reaches_a_known_customer() -> None:
    withdrawn = Consent(analytics=False, personalization=False, marketing=False)
    sim = simulate([_touch("e1", minutes(0), GRANTED, COOKIE)], roundtrip=True)
    sim.submit([_touch("e2", hours(1), withdrawn, COOKIE)])
    after = sim.run()
    [customer] = list(sim.live_customers())
    assert customer.timeline is not None and customer.timeline.consent == withdrawn
    assert customer.timeline.open_touches() == 1  # the withdrawing touch is not placed
    [change] = [r for r in after if isinstance(r, ConsentChange)]
    assert change.withdraws_personalization
    [journey] = [r for r in after if isinstance(r, JourneyUpdate)]
    assert journey.consent == withdrawn and journey.touch_count == 1
    assert next(r for r in after if isinstance(r, AnonymousTouchpoint)).touch.event_id == "e2"


def test_a_withdrawal_older_than_the_latest_consent_changes_nothing() -> None:
    withdrawn = Consent(analytics=False)
    sim = simulate([_touch("e2", hours(1), GRANTED, COOKIE)])
    sim.submit([_touch("e1", minutes(0), withdrawn, COOKIE)])
    after = sim.run()
    [customer] = list(sim.live_customers())
    assert customer.timeline is not None and customer.timeline.consent == GRANTED
    assert [type(r) for r in after] == [AnonymousTouchpoint]


def test_a_withdrawal_right_after_the_first_touch_applies_in_any_interleaving() -> None:
    # Two partitions, many seeds: whatever the schedule, the notice follows the creation.
    withdrawn = Consent(analytics=False)
    for seed in range(30):
        sim = Simulator(Stitcher(), 2, seed)
        sim.submit(
            [_touch("e1", minutes(0), GRANTED, COOKIE), _touch("e2", minutes(1), withdrawn, COOKIE)]
        )
        sim.run()
        [customer] = list(sim.live_customers())
        assert customer.timeline is not None and customer.timeline.consent == withdrawn, seed
