"""Sessions and journeys of one customer in event time: splits, conversions, lateness, bounds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from streams.core.config import CoreConfig
from streams.core.model import Touch
from streams.core.records import EnrichedTouchpoint, JourneyUpdate, Record, SessionUpdate
from streams.core.simulation import Simulator
from streams.core.stitcher import Stitcher
from tests.core.support import T0, days, final_view, hours, minutes, simulate
from tests.core.support import touch as make

ME = ("anonymous_id", "me")


def t(event_id: str, channel: str, type_: str, at: timedelta, **extra: object) -> Touch:
    """A touch of the one customer of these tests."""
    return make(event_id, channel, type_, at, ME, **extra)  # type: ignore[arg-type]


def current(records: Sequence[Record], kind: str) -> list[dict]:
    """Current sessions or journeys, in event-time order."""
    view = final_view(records)
    found = [data for (key_kind, _), data in view.items() if key_kind == kind]
    return sorted(found, key=lambda data: (str(data["started_at"]), str(data["first_event_id"])))


def sessions(records: Sequence[Record]) -> list[list[str]]:
    """Each current session as [first event, last event, count]."""
    return [
        [s["first_event_id"], s["last_event_id"], s["touch_count"]]
        for s in current(records, "session")
    ]


def journeys(records: Sequence[Record]) -> list[dict]:
    """Current journeys, in event-time order."""
    return current(records, "journey")


def customer(sim: Simulator):
    """The one live customer."""
    (state,) = list(sim.live_customers())
    return state


def test_a_web_session_ends_after_30_minutes_without_a_touch() -> None:
    sim = simulate([t("a", "web", "page_view", minutes(0)), t("b", "web", "page_view", minutes(29)),
                    t("c", "web", "page_view", minutes(60))])  # fmt: skip
    assert sessions(sim.records) == [["a", "b", 2], ["c", "c", 1]]
    (journey,) = journeys(sim.records)
    assert journey["channel_path"] == ["web"]
    assert len(journey["session_ids"]) == 2


def test_a_session_never_spans_more_than_its_maximum_length() -> None:
    every_20_minutes = [t(f"v{i:03d}", "web", "page_view", minutes(20 * i)) for i in range(80)]
    sim = simulate(every_20_minutes)
    spans = [(s["started_at"], s["ended_at"]) for s in current(sim.records, "session")]
    assert len(spans) == 2  # 26 h of activity, at most 24 h per session
    assert sessions(sim.records)[0] == ["v000", "v072", 73]


def test_sessions_are_per_channel_and_the_journey_records_every_switch() -> None:
    sim = simulate([
        t("w1", "web", "product_view", minutes(0)),
        t("p1", "pos", "store_visit", hours(2)),
        t("w2", "web", "page_view", hours(2.2)),
        t("c1", "callcenter", "call_started", hours(3)),
    ])  # fmt: skip
    (journey,) = journeys(sim.records)
    assert journey["channel_path"] == ["web", "pos", "web", "callcenter"]
    assert journey["switch_count"] == 3
    assert [(s["from_channel"], s["to_channel"], s["event_id"]) for s in journey["switches"]] == [
        ("web", "pos", "p1"),
        ("pos", "web", "w2"),
        ("web", "callcenter", "c1"),
    ]
    view = final_view(sim.records)
    assert [view[("touch", e)]["previous_channel"] for e in ("w1", "p1", "w2", "c1")] == [
        None,
        "web",
        "pos",
        "web",
    ]
    assert [view[("touch", e)]["position"] for e in ("w1", "p1", "w2", "c1")] == [1, 2, 3, 4]


def test_a_purchase_converts_and_ends_the_journey_the_next_touch_starts_a_new_one() -> None:
    sim = simulate([
        t("v", "web", "product_view", minutes(0)),
        t("buy", "web", "purchase", minutes(10), value="19.99"),
        t("next", "web", "page_view", minutes(20)),
    ])  # fmt: skip
    first, second = journeys(sim.records)
    assert (first["status"], first["conversion_event_id"], first["last_event_id"]) == (
        "converted",
        "buy",
        "buy",
    )
    assert first["conversion_value"] == "19.99" and first["conversion_currency"] == "EUR"
    assert (second["status"], second["first_event_id"]) == ("open", "next")
    assert sessions(sim.records) == [["v", "buy", 2], ["next", "next", 1]]  # cut at the journey


def test_a_call_after_the_purchase_follows_up_the_converted_journey_within_its_window() -> None:
    sim = simulate([
        t("buy", "pos", "purchase", hours(0), value="80.00"),
        t("call", "callcenter", "call_started", days(2)),
        t("call2", "callcenter", "call_started", days(10)),  # beyond the 7-day follow-up window
    ])  # fmt: skip
    first, second = journeys(sim.records)
    assert first["channel_path"] == ["pos", "callcenter"]
    assert first["status"] == "converted"
    assert second["first_event_id"] == "call2"


def test_a_journey_expires_after_the_inactivity_in_event_time() -> None:
    sim = simulate([t("a", "web", "page_view", days(0)), t("b", "web", "page_view", days(8))])
    first, second = journeys(sim.records)
    assert (first["status"], second["status"]) == ("expired", "open")


def test_a_journey_never_spans_more_than_the_maximum_duration() -> None:
    weekly = [t(f"w{i:02d}", "web", "page_view", days(6 * i)) for i in range(20)]
    sim = simulate(weekly)
    spans = [(j["first_event_id"], j["last_event_id"]) for j in journeys(sim.records)]
    assert spans == [("w00", "w15"), ("w16", "w19")]  # 90 days at most


def test_ticks_expire_idle_journeys_then_seal_and_evict_them() -> None:
    sim = simulate([t("a", "web", "page_view", hours(0)), t("b", "app", "screen_view", hours(1))])
    sim.tick(T0 + days(3))
    assert sim.run() == []  # nothing changed yet
    sim.tick(
        T0
        + days(
            7,
        )
        + hours(2)
    )
    (expired,) = sim.run()
    assert isinstance(expired, JourneyUpdate)
    assert (expired.status, expired.final) == ("expired", False)
    assert customer(sim).timeline.open_touches() == 2
    sim.tick(T0 + days(9))  # 7 days of inactivity + 1 day of the largest lateness behind
    (sealed,) = sim.run()
    assert isinstance(sealed, JourneyUpdate)
    assert (sealed.status, sealed.final, sealed.version > expired.version) == (
        "expired",
        True,
        True,
    )
    assert customer(sim).timeline.open_touches() == 0


def test_a_late_purchase_within_the_lateness_converts_the_journey_earlier() -> None:
    sim = simulate([
        t("v1", "web", "product_view", minutes(0)),
        t("v2", "web", "page_view", minutes(120)),
        t("buy", "pos", "purchase", minutes(60), received=hours(5)),  # the till was late
    ])  # fmt: skip
    first, second = journeys(sim.records)
    assert (first["first_event_id"], first["last_event_id"], first["status"]) == (
        "v1",
        "buy",
        "converted",
    )
    assert (second["first_event_id"], second["status"]) == ("v2", "open")
    touchpoints = [r for r in sim.records if isinstance(r, EnrichedTouchpoint)]
    last = touchpoints[-1].version
    moved = [r.touch.event_id for r in touchpoints if r.version == last]
    assert moved == ["buy", "v2"]  # v2 changed journey and position; v1 did not change


def test_a_late_touch_between_two_sessions_merges_them_and_says_what_it_supersedes() -> None:
    sim = simulate([
        t("a", "web", "page_view", minutes(0)),
        t("b", "web", "page_view", minutes(50)),
        t("late", "web", "page_view", minutes(25)),  # 25 min behind the watermark: in time
    ])  # fmt: skip
    assert sessions(sim.records) == [["a", "b", 3]]
    updates = [r for r in sim.records if isinstance(r, SessionUpdate)]
    tombstone = updates[-1]
    assert tombstone.first_event_id == "b" and tombstone.superseded_by == updates[-2].session_id
    assert updates[-2].supersedes == (tombstone.session_id,)


def test_a_touch_beyond_the_allowed_lateness_is_kept_flagged_and_changes_nothing() -> None:
    sim = simulate([t("a", "web", "page_view", hours(0)), t("b", "web", "page_view", hours(10))])
    before = len(sim.records)
    sim.submit([t("old", "web", "page_view", hours(1))])  # 9 h behind: web allows 1 h
    sim.run()
    (record,) = sim.records[before:]
    assert isinstance(record, EnrichedTouchpoint)
    assert record.late is True
    assert record.session_id is None and record.position is None
    assert record.journey_id == journeys(sim.records)[0]["journey_id"]  # attached by time


def test_lateness_is_judged_within_the_touchs_own_channel() -> None:
    # A call 31 h after an app touch reaches the customer first (through a merge, say): the
    # app touch is still within the app's lateness of the app's own latest touch, so it is
    # placed; a web touch 9 h behind the latest web touch is late whatever the other channels.
    sim = simulate(
        [
            t("web", "web", "page_view", hours(10)),
            t("call", "callcenter", "call_started", hours(34)),
        ]
    )
    sim.submit([t("app", "app", "screen_view", hours(3)), t("old", "web", "page_view", hours(1))])
    sim.run()
    view = final_view(sim.records)
    assert view[("touch", "app")]["late"] is False
    assert view[("touch", "app")]["journey_id"] is not None
    assert view[("touch", "old")]["late"] is True
    assert [j["touch_count"] for j in journeys(sim.records)] == [3]


def test_a_duplicate_event_id_changes_nothing() -> None:
    sim = simulate([t("a", "web", "page_view", hours(0)), t("b", "web", "page_view", hours(1))])
    before = len(sim.records)
    sim.submit([t("a", "web", "page_view", hours(0)), t("b", "web", "page_view", hours(1))])
    assert sim.run() == []
    assert len(sim.records) == before


def test_crm_updates_link_identities_but_are_no_touch_of_a_journey() -> None:
    sim = simulate([
        t("w", "web", "page_view", hours(0)),
        make("r", "crm", "profile_update", hours(1), ME, ("customer_id", "C1")),
    ])  # fmt: skip
    (journey,) = journeys(sim.records)
    assert journey["touch_count"] == 1
    view = final_view(sim.records)
    assert view[("touch", "r")]["journey_id"] is None
    assert sim.owner("customer_id:C1") == sim.owner("anonymous_id:me")


def test_state_stays_bounded_for_a_customer_active_for_a_year() -> None:
    daily = []
    for day in range(365):
        daily.append(t(f"d{day:03d}v", "web", "product_view", days(day)))
        if day % 5 == 4:
            daily.append(t(f"d{day:03d}p", "web", "purchase", days(day) + minutes(5)))
    sim = simulate(daily)
    timeline = customer(sim).timeline
    # Held: the open journey and the converted ones still in their follow-up window (7 days)
    # plus the largest lateness (1 day); about two weeks of touches, whatever the history.
    assert timeline.open_touches() <= 16
    assert len(timeline.seen) <= 20  # event ids within the dedupe horizon (7 days), or open
    assert len(timeline.sealed) <= 3
    assert sum(1 for r in sim.records if isinstance(r, JourneyUpdate) and r.final) >= 70


def test_journeys_are_sealed_only_beyond_the_largest_lateness() -> None:
    short = CoreConfig(journeys=replace(CoreConfig().journeys, inactivity=hours(3)))
    sim = simulate(
        [
            t("v1", "web", "page_view", hours(0)),
            t("v2", "web", "page_view", hours(12)),  # the first journey expired 9 h ago
            t("p", "pos", "store_visit", hours(2), received=hours(22)),  # a till, 10 h behind
        ],
        stitcher=Stitcher(short),
    )
    first, second = journeys(sim.records)
    assert (first["first_event_id"], first["last_event_id"], first["touch_count"]) == ("v1", "p", 2)
    assert first["channel_path"] == ["web", "pos"]
    assert second["first_event_id"] == "v2"


def test_a_merge_brings_the_other_customers_watermark_along() -> None:
    tablet = ("device_id", "tablet")
    sim = simulate([make("d", "app", "screen_view", days(0.5), tablet)])
    sim.tick(T0 + days(8.6))  # the tablet's customer: watermark 8.6 days, its journey sealed
    sim.run()
    # Then an older customer appears (its touches were late to reach us) and meets it.
    sim.submit([t("w1", "web", "page_view", days(0.4)), t("w2", "web", "page_view", days(1))])
    sim.run()
    (journey,) = journeys(sim.records[-3:])
    assert journey["status"] == "open"
    sim.submit([make("r", "crm", "profile_update", days(8.7), tablet, ME)])
    sim.run()
    # The merged customer knows it is day 8.6: the web journey (idle since day 1) expired.
    web = [j for j in journeys(sim.records) if j["first_event_id"] == "w1"]
    assert [(j["status"], j["final"]) for j in web] == [("expired", False)]
