"""The simulation: deterministic, every behaviour present, valid events, truth that adds up."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from omnijourney.exceptions import ConfigurationError, InvalidTouchpoint, NaiveDatetime
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.delivery import Stamper, kafka_record
from schemas.emitter import Emitter
from schemas.pii import normalize_phone
from schemas.validation import parse_touchpoint
from tests.simulator.support import HASHER, START, medium, run

RECEIVED = datetime(2025, 1, 1, tzinfo=UTC)
FICTIONAL_PHONE = re.compile(
    r"^\+1\d{3}55501\d{2}$|^\+44(2079460|113496|114496|116496|117496|118496|121496|131496"
    r"|141496|151496|161496|191498|2920180)\d+$"
)


def _wire(config: SimulationConfig) -> list[bytes]:
    """Every Kafka record and truth line of a simulation, as bytes."""
    emitter, stamper = Emitter(HASHER), Stamper("simulated")
    sim = run(config)
    out = []
    for emission in sim.emissions:
        topic, key, value = kafka_record(emission, emitter, stamper, "touchpoints")
        out.append(b"|".join((topic.encode(), key, value)))
    return out + [record.line() for record in sim.records]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    config = SimulationConfig(customers=120, days=5, start=START, seed=5)
    first, second = _wire(config), _wire(config)
    assert first == second
    assert len(first) > 300
    other = _wire(SimulationConfig(customers=120, days=5, start=START, seed=6))
    assert other != first


def test_every_behaviour_is_present() -> None:
    sim = medium()
    summary = sim.summary
    types = Counter(f"{e.channel}/{e.event['type']}" for e in sim.emissions if e.event)
    for needed in (
        "web/login", "app/login", "web/purchase", "app/purchase", "pos/purchase", "pos/return",
        "pos/loyalty_scan", "pos/store_visit", "callcenter/call_started", "email/click",
        "sms/click", "crm/customer_update",
    ):  # fmt: skip
        assert types[needed] > 0, needed
    assert summary["journeys_ropo"] > 0
    assert summary["journeys_showrooming"] > 0
    assert summary["shared_identifiers"] > 0  # the family tablets
    assert summary["late_events"] > 0 and summary["duplicate_copies"] > 0
    assert summary["signups"] > 0
    # a minority buys: a few percent of web/app sessions convert
    assert 0.02 <= summary["online_conversion_rate"] <= 0.07
    # malformed share as configured (2%, about 7,000 records: sd 0.17%)
    assert summary["malformed_share"] == pytest.approx(0.02, abs=0.006)
    # anonymous-heavy: most web events carry no customer id
    web = [e.event for e in sim.emissions if e.event and e.channel == "web"]
    known = sum(any(i["kind"] == "customer_id" for i in e["identities"]) for e in web)
    assert known / len(web) < 0.4


def test_stores_sell_with_and_without_the_loyalty_card() -> None:
    kinds = [
        {i["kind"] for i in e.event["identities"]}
        for e in medium().emissions
        if e.event and e.channel == "pos" and e.event["type"] == "purchase"
    ]
    assert any("loyalty_id" in k for k in kinds)
    assert any(k == {"anonymous_id"} for k in kinds)


def test_every_event_passes_the_edge_and_every_malformed_one_is_refused() -> None:
    emitter, stamper = Emitter(HASHER), Stamper("none")
    reasons: Counter[str] = Counter()
    for emission in medium().emissions:
        if emission.raw is None:
            kafka_record(emission, emitter, stamper, "touchpoints")  # raises if invalid
            continue
        with pytest.raises(InvalidTouchpoint) as refused:
            parse_touchpoint(emission.raw, received_at=RECEIVED, hasher=HASHER)
        reasons[refused.value.reason] += 1
    assert {"not_json", "missing_field", "no_identifier", "wrong_types"} <= set(reasons)


def test_contact_data_is_fictional() -> None:
    emails, phones = set(), set()
    for emission in medium().emissions:
        for ident in (emission.event or {"identities": []})["identities"]:
            if ident["kind"] == "email":
                emails.add(ident["value"].strip().lower())
            elif ident["kind"] == "phone":
                phones.add(normalize_phone(ident["value"], "US"))
    assert emails and phones
    assert all(e.rsplit("@", 1)[1] in ("example.com", "example.org", "example.net") for e in emails)
    assert all(FICTIONAL_PHONE.match(p) for p in phones), sorted(phones)[:5]
    # the truth holds them only hashed
    lines = b"".join(record.line() for record in medium().records)
    assert b"@" not in lines and b"shopper." not in lines
    assert not [p for p in phones if p[1:].encode() in lines or p[-10:].encode() in lines]


def test_truth_identifiers_are_what_the_edge_sees() -> None:
    sim = medium()
    truth = sim.truth
    emitter = Emitter(HASHER)
    seen: set[str] = set()
    for emission in sim.emissions:
        if emission.event is None:
            continue
        touchpoint = emitter.touchpoint({**emission.event, "sent_at": None}, now=RECEIVED)
        for ident in touchpoint.identities:
            seen.add(f"{ident.kind}:{ident.value}")
    assert seen == set(truth.identifiers) | set(truth.shared)
    assert all(re.fullmatch(r"email_hash:[0-9a-f]{64}", k) for k in seen if "email" in k)
    assert all(len(people) >= 2 for people in truth.shared.values())
    assert set(truth.components) == set(truth.identifiers)
    # achievable pairs never exceed true ones; each component lies inside one person
    owner = {}
    for ident, component in truth.components.items():
        assert owner.setdefault(component, truth.identifiers[ident]) == truth.identifiers[ident]


def test_journeys_hold_every_event_once_in_time_order() -> None:
    sim = medium()
    occurred = {e.event["event_id"]: e.occurred for e in sim.emissions if e.kind == "event"}
    activity = {
        e.event["event_id"] for e in sim.emissions if e.kind == "event" and e.channel != "crm"
    }
    placed = [event for events in sim.truth.journeys.values() for event in events]
    assert len(placed) == len(set(placed)) and set(placed) == activity
    for journey, events in sim.truth.journeys.items():
        times = [occurred[e] for e in events]
        assert times == sorted(times)
        sessions = [s for key, s in sim.truth.sessions.items() if key.rsplit("/", 1)[0] == journey]
        assert sorted(e for s in sessions for e in s) == sorted(events)
    converted = [j for j in sim.of_type("journey") if j["converted"]]
    assert converted and all(j["conversion"]["event_id"] in j["events"] for j in converted)


def test_nightly_batches_arrive_after_later_events() -> None:
    sim = medium()
    late = sim.truth.late
    batch = [e for e in sim.emissions if e.kind == "event" and e.upload is not None]
    assert len(late) == len(batch) > 0
    order = {id(e): n for n, e in enumerate(sim.emissions)}
    for emission in batch:
        record = late[emission.event["event_id"]]
        assert emission.channel == "pos" and record["delay_s"] >= 3600
        assert emission.event["event_id"] in sim.truth.journeys[record["journey"]]
        earlier = sim.emissions[: order[id(emission)]]
        assert any(e.occurred > emission.occurred for e in earlier)


def test_duplicates_resend_the_same_event_later() -> None:
    sim = medium()
    first: dict[str, int] = {}
    copies: Counter[str] = Counter()
    for n, emission in enumerate(sim.emissions):
        if emission.kind == "event":
            first[emission.event["event_id"]] = n
        elif emission.kind == "duplicate":
            event_id = emission.event["event_id"]
            assert first[event_id] < n  # the original went first
            copies[event_id] += 1
    assert copies and dict(copies) == sim.truth.duplicates


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(NaiveDatetime):
        SimulationConfig(customers=10, days=1, start=datetime(2024, 5, 1))  # noqa: DTZ001
    with pytest.raises(ConfigurationError, match="customers"):
        SimulationConfig(customers=0, days=1, start=START)
    with pytest.raises(ConfigurationError, match="malformed_share"):
        SimulationConfig(customers=1, days=1, start=START, malformed_share=0.9)
    offset = SimulationConfig(customers=1, days=1, start=START + timedelta(hours=0))
    assert offset.end_ts - offset.start_ts == 86_400
