"""Worked examples, as a retailer would tell them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from streams.core.records import JourneyUpdate, LinkRejection
from tests.core.support import check_quiescent, days, fake_hash, final_view, hours, minutes
from tests.core.support import simulate as run
from tests.core.support import touch as t

PHONE = fake_hash("the customer's mobile")
TABLET = ("device_id", "family-tablet")


def journeys(sim) -> list[dict]:
    """Current journeys, oldest first."""
    view = final_view(sim.records, sim.resolve)
    found = [data for (kind, _), data in view.items() if kind == "journey"]
    return sorted(found, key=lambda data: str(data["started_at"]))


@pytest.mark.parametrize("partitions", [1, 3, 8])
@pytest.mark.parametrize("seed", range(5))
def test_browse_login_buy_in_store_then_call_is_one_customer_and_one_journey(
    partitions: int, seed: int
) -> None:
    story = [
        t("w1", "web", "page_view", minutes(0), ("anonymous_id", "cookie-1")),
        t("w2", "web", "product_view", minutes(3), ("anonymous_id", "cookie-1")),
        t("w3", "web", "login", minutes(5), ("anonymous_id", "cookie-1"), ("customer_id", "C42")),
        # The CRM registry knows the loyalty card and the phone of account C42.
        t("r1", "crm", "profile_update", minutes(30), ("customer_id", "C42"),
          ("loyalty_id", "L-7"), ("phone_hash", PHONE)),
        t("p1", "pos", "purchase", hours(32), ("loyalty_id", "L-7"), value="59.90"),
        t("c1", "callcenter", "call_started", days(2), ("phone_hash", PHONE)),
    ]  # fmt: skip
    sim = run(story, partitions, seed)
    check_quiescent(sim)

    owners = {sim.owner(key) for key, _ in sim.identifier_states()}
    assert len(owners) == 1, f"seed {seed} P={partitions}: {owners}"
    (journey,) = journeys(sim)
    assert journey["channel_path"] == ["web", "pos", "callcenter"]
    assert journey["status"] == "converted"
    assert journey["conversion_channel"] == "pos"
    assert journey["conversion_value"] == "59.90"
    assert journey["touch_count"] == 5  # the CRM update links identities, it is no touch
    assert journey["customer_id"] == owners.pop()


def test_a_shared_family_tablet_does_not_merge_two_customer_accounts() -> None:
    story = [
        t("m1", "app", "login", minutes(0), TABLET, ("customer_id", "mother")),
        t("m2", "app", "product_view", minutes(2), TABLET, ("customer_id", "mother")),
        t("k1", "app", "login", hours(3), TABLET, ("customer_id", "kid")),
        t("k2", "app", "add_to_cart", hours(3.1), TABLET, ("customer_id", "kid")),
        t("x1", "app", "screen_view", hours(5), TABLET),  # nobody logged in
    ]
    holders = set()
    for seed in range(20):
        sim = run(story, 3, seed)
        check_quiescent(sim)
        mother, kid = sim.owner("customer_id:mother"), sim.owner("customer_id:kid")
        assert mother != kid, f"seed {seed}: the accounts were merged"
        # Whoever's login reached the tablet first holds it; the other's links are refused.
        holder = sim.owner("device_id:family-tablet")
        assert holder in (mother, kid), f"seed {seed}"
        refused, events = (kid, {"k1", "k2"}) if holder == mother else (mother, {"m1", "m2"})
        rejections = [r for r in sim.records if isinstance(r, LinkRejection)]
        assert {r.event_id for r in rejections} == events, f"seed {seed}"
        assert {r.rule for r in rejections} == {"limit:customer_id"}
        assert all(r.identifier.key == "device_id:family-tablet" for r in rejections)
        assert {r.customer_id for r in rejections} == {refused}
        assert {r.other_customer_id for r in rejections} == {holder}
        # The anonymous screen view goes to the tablet's holder; each keeps its own touches.
        view = final_view(sim.records, sim.resolve)
        assert view[("touch", "x1")]["customer_id"] == holder
        assert view[("touch", "m2")]["customer_id"] == mother
        assert view[("touch", "k2")]["customer_id"] == kid
        holders.add(holder == mother)
    assert holders == {True, False}  # both races happen over the seeds


def test_a_till_batch_uploaded_ten_hours_late_lands_in_the_right_journey() -> None:
    card, account = ("loyalty_id", "L-99"), ("customer_id", "C99")
    cookie = ("anonymous_id", "cookie-99")
    morning = [
        t("r1", "crm", "profile_update", hours(0), account, card),
        t("w1", "web", "product_view", hours(1), cookie, account),  # 10:00
        t("w2", "web", "add_to_cart", hours(1.2), cookie, account),
    ]
    evening = [
        t("w3", "web", "page_view", hours(11), cookie, account),  # 20:00, after the purchase
        t("w4", "web", "product_view", hours(11.1), cookie, account),
    ]
    # The till went offline: visit and purchase at noon reach us at 22:00.
    till_batch = [
        t("p1", "pos", "loyalty_scan", hours(2.9), card, received=hours(13)),
        t("p2", "pos", "purchase", hours(3), card, value="120.00", received=hours(13)),
    ]
    sim = run(morning + evening)
    sim.tick(t("now", "web", "x", hours(12.9), cookie).occurred_at)  # 21:54 processing time
    sim.run()
    before = journeys(sim)
    assert [j["touch_count"] for j in before] == [4]  # one open journey, no purchase yet
    sim.submit(till_batch)
    sim.run()
    check_quiescent(sim)

    first, second = journeys(sim)
    assert first["channel_path"] == ["web", "pos"]
    assert first["status"] == "converted"
    assert first["conversion_event_id"] == "p2"
    assert Decimal(str(first["conversion_value"])) == Decimal("120.00")
    assert first["touch_count"] == 4  # w1, w2, p1, p2
    assert second["channel_path"] == ["web"]
    assert second["first_event_id"] == "w3"
    assert second["status"] == "open"
    # The batch was within the till's allowed lateness: placed, not flagged.
    view = final_view(sim.records, sim.resolve)
    assert view[("touch", "p2")]["late"] is False
    assert view[("touch", "p2")]["position"] == 4
    assert view[("touch", "w3")]["journey_id"] == second["journey_id"]
    assert view[("touch", "w3")]["position"] == 1
    # The journey that had swallowed the evening browsing was corrected, not duplicated.
    updates = [r for r in sim.records if isinstance(r, JourneyUpdate)]
    assert {u.journey_id for u in updates} == {first["journey_id"], second["journey_id"]}


def test_the_live_story_gives_one_journey_of_every_touch_in_every_interleaving() -> None:
    # The worker's scripted story (tests/streams/test_stitching.py): touches of five channels
    # spanning 34 hours, reaching the customer through four merges in any order. An app touch
    # that arrives after a call absorbed from another profile must still be placed: lateness
    # is judged within the touch's own channel.
    cookie, device, account = ("anonymous_id", "c"), ("device_id", "d"), ("customer_id", "C")
    loyalty, phone = ("loyalty_id", "L"), ("phone_hash", PHONE)
    story = [
        t("01", "web", "page_view", minutes(0), cookie),
        t("02", "web", "product_view", minutes(2), cookie),
        t("03", "web", "login", minutes(5), cookie, account),
        t("04", "app", "login", hours(3), device, account),
        t("05", "app", "product_view", hours(3) + minutes(1), device),
        t("06", "crm", "customer_update", hours(20), account, loyalty, phone),
        t("09", "callcenter", "call_started", hours(34), phone),
        t("07", "pos", "store_visit", hours(25) + minutes(50), loyalty),
        t("08", "pos", "purchase", hours(26), loyalty, value="42.00"),
    ]  # fmt: skip
    for partitions in (1, 2, 3):
        for seed in range(60):
            (journey,) = journeys(run(story, partitions, seed))
            assert journey["touch_count"] == 8, f"P={partitions} seed={seed}"
            assert journey["channel_path"] == ["web", "app", "pos", "callcenter"]
