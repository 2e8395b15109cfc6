"""The truth's evidence journeys: what the journey rules cut from each evidence component."""

from __future__ import annotations

import random
from datetime import timedelta

from omnijourney.simulator.behaviour import Touch
from omnijourney.simulator.config import TruthRules
from omnijourney.simulator.population import Ids, make_population
from omnijourney.simulator.truth import TruthBuilder, TruthRecord, read_truth
from streams.core.config import CoreConfig
from tests.simulator.support import HASHER, medium

DAY = 86_400
COOKIE = ("anonymous_id", "cookie-1", "")
CASH = ("anonymous_id", "rcpt-R-1", "")
ACCOUNT = ("customer_id", "C-1", "")
TABLET = ("device_id", "tablet-1", "")


def _truth(
    touches: list[tuple[int, int, str, tuple[tuple[str, str, str], ...]]],
) -> list[TruthRecord]:
    """Run a TruthBuilder over (person, day, channel/type, ids) touches, in time order."""
    people, _ = make_population(random.Random(1), Ids(1), 2, 1, HASHER)
    builder = TruthBuilder(TruthRules(), people)
    records: list[TruthRecord] = []
    for n, (person, day, what, ids) in enumerate(touches):
        channel, _, type_ = what.partition("/")
        touch = Touch(day * DAY + n, channel, type_, ids, {})
        closed = builder.observe(person, f"e{n}", touch)
        records.extend([closed] if closed else [])
    records.extend(builder.finish())
    return records


def test_an_unlinkable_purchase_splits_what_the_evidence_allows() -> None:
    # browse, pay cash in store (nothing ties the receipt to the shopper), browse again
    records = _truth(
        [
            (0, 0, "web/page_view", (COOKIE,)),
            (0, 1, "pos/purchase", (CASH,)),
            (0, 2, "web/page_view", (COOKIE,)),
        ]
    )
    truth = read_truth(record.line() for record in records)
    assert sorted(truth.journeys.values()) == [("e0", "e1"), ("e2",)]
    # a resolver can only see the cookie's browsing as one journey and the receipt as another
    assert sorted(truth.evidence_journeys.values()) == [("e0", "e2"), ("e1",)]
    assert truth.attainable == frozenset()
    assert sorted(truth.evidence_sessions.values()) == [("e0",), ("e1",), ("e2",)]


def test_linked_identifiers_make_the_true_journeys_attainable() -> None:
    records = _truth(
        [
            (0, 0, "web/page_view", (COOKIE,)),
            (0, 0, "web/login", (COOKIE, ACCOUNT)),
            (0, 1, "web/purchase", (ACCOUNT,)),
            (0, 9, "web/page_view", (COOKIE,)),
        ]
    )
    truth = read_truth(record.line() for record in records)
    assert truth.evidence_journeys == {
        "V-0000001": ("e0", "e1", "e2"),
        "V-0000002": ("e3",),
    }
    assert truth.attainable == frozenset(truth.journeys)
    assert truth.evidence_sessions == {
        f"{v}/{n}": s
        for v, j in (("V-0000001", "T-0000001-001"), ("V-0000002", "T-0000001-002"))
        for n, s in enumerate(
            [s for k, s in sorted(truth.sessions.items()) if k.startswith(j)], start=1
        )
    }
    evidence = [r.data for r in records if r.type == "evidence_journey"]
    assert all(e["same_as"] and "events" not in e for e in evidence)


def test_touches_with_only_a_shared_identifier_are_a_group_of_their_own() -> None:
    # two people use the family tablet logged out; one of them also logs in on it
    records = _truth(
        [
            (0, 0, "app/login", (TABLET, ACCOUNT)),
            (0, 0, "app/screen_view", (TABLET,)),
            (1, 1, "app/screen_view", (TABLET,)),
        ]
    )
    truth = read_truth(record.line() for record in records)
    assert truth.shared == {"device_id:tablet-1": ("P-0000001", "P-0000002")}
    assert sorted(truth.evidence_journeys.values()) == [("e0",), ("e1", "e2")]
    groups = {r.data["group"] for r in records if r.type == "evidence_journey"}
    assert "shared device_id:tablet-1" in groups


def test_evidence_journeys_cover_every_activity_event_once_inside_one_component() -> None:
    sim = medium()
    truth = sim.truth
    placed = [e for events in truth.evidence_journeys.values() for e in events]
    assert len(placed) == len(set(placed))
    assert set(placed) == {e for events in truth.journeys.values() for e in events}
    person_of = {e: j.rsplit("-", 1)[0] for j, events in truth.journeys.items() for e in events}
    for record in sim.of_type("evidence_journey"):  # shared tablets aside, one person each
        if str(record["group"]).startswith("E-") and record["same_as"] is None:
            assert len({person_of[e] for e in record["events"]}) == 1  # type: ignore[attr-defined]
    summary = sim.summary
    assert summary["evidence_journeys"] == len(truth.evidence_journeys)
    assert summary["journeys_attainable"] == len(truth.attainable)
    assert 0 < len(truth.attainable) < len(truth.journeys)
    for journey in truth.attainable:
        assert truth.journeys[journey] in set(truth.evidence_journeys.values())


def test_late_events_are_judged_within_their_channel() -> None:
    """`behind_s` is how far the person's latest event of the same channel was ahead of it."""
    sim = medium()
    latest: dict[tuple[int, str], int] = {}
    behind_other_channels = 0
    for emission in sim.emissions:
        if emission.kind == "malformed" or emission.channel == "crm":
            continue
        key = (emission.person, emission.channel)
        if emission.upload is not None and emission.kind == "event":
            assert emission.event is not None
            record = sim.truth.late[emission.event["event_id"]]
            expected = max(0, latest.get(key, emission.occurred) - emission.occurred)
            assert record["behind_s"] == expected
            ahead = [t for (p, _), t in latest.items() if p == emission.person]
            behind_other_channels += max(ahead, default=0) - emission.occurred > 3600
        latest[key] = max(latest.get(key, emission.occurred), emission.occurred)
    assert behind_other_channels > 0  # the person's web or app use went on meanwhile


def test_truth_rules_mirror_the_core_defaults() -> None:
    rules, core = TruthRules(), CoreConfig()
    seconds = timedelta.total_seconds
    for channel, rule in core.channels.items():
        gap, longest = rules.session(channel)
        assert (gap, longest) == (seconds(rule.session_gap), seconds(rule.max_session)), channel
        assert rules.allowed_lateness(channel) == seconds(rule.allowed_lateness), channel
    default = core.default_channel
    assert rules.default_session == (seconds(default.session_gap), seconds(default.max_session))
    assert rules.default_lateness == seconds(default.allowed_lateness)
    journeys = core.journeys
    assert rules.conversion_types == journeys.conversion_types
    assert rules.follow_up_types == journeys.follow_up_types
    assert rules.identity_only_channels == journeys.identity_only_channels
    assert rules.inactivity == seconds(journeys.inactivity)
    assert rules.follow_up_window == seconds(journeys.follow_up_window)
    assert rules.max_duration == seconds(journeys.max_duration)
