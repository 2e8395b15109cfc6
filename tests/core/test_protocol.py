"""The step functions one message at a time: routing, ids, merges, and impossible messages."""

from __future__ import annotations

import json

import pytest

from omnijourney.exceptions import ProtocolViolation
from streams.core.identity import IdentifierState
from streams.core.messages import (
    Assign,
    Claim,
    Conflict,
    Granted,
    Handover,
    MergeAccepted,
    MergeRejected,
    Propose,
    Repoint,
    Route,
    Tick,
    Topic,
    message_from_dict,
    message_to_dict,
)
from streams.core.model import Identifier
from streams.core.records import IdentityLink, LinkRejection, Merge
from streams.core.stitcher import ALIAS, FROZEN, LIVE, Stitcher
from tests.core.support import T0, check_quiescent, hours, minutes, simulate
from tests.core.support import touch as t

COOKIE = Identifier("anonymous_id", "cookie")
ACCOUNT = Identifier("customer_id", "C1")


def test_a_touch_is_routed_to_its_strongest_usable_identifier() -> None:
    stitcher = Stitcher()
    item = t("e", "web", "login", minutes(0), ("anonymous_id", "undefined"),
             ("anonymous_id", "cookie"), ("customer_id", "C1"))  # fmt: skip
    send = stitcher.route(item)
    assert (send.topic, send.key) == (Topic.IDENTIFIER, "customer_id:C1")
    assert isinstance(send.message, Route)
    assert send.message.others == (COOKIE,)
    assert send.message.blocked == (Identifier("anonymous_id", "undefined"),)


def test_an_unowned_identifier_creates_a_customer_named_after_it_and_the_time() -> None:
    stitcher = Stitcher()
    route = stitcher.route(t("e", "web", "page_view", minutes(0), ("anonymous_id", "cookie")))
    state, records, sends = stitcher.identifier_step(route.key, None, route.message)
    assert state is not None and records == []
    (send,) = sends
    assert send.topic == Topic.CUSTOMER and send.key == state.owner
    assert isinstance(send.message, Assign) and send.message.create
    # The same identifier at the same time names the same customer (replays agree)...
    again, _, _ = Stitcher().identifier_step(route.key, None, route.message)
    assert again is not None and again.owner == state.owner
    # ... and ids order customers by creation time: the older one is the smaller id.
    later = stitcher.route(t("f", "web", "page_view", hours(1), ("anonymous_id", "another")))
    younger, _, _ = stitcher.identifier_step(later.key, None, later.message)
    assert younger is not None and state.owner < younger.owner


def test_claims_are_granted_once_and_answered_with_the_owner_afterwards() -> None:
    stitcher = Stitcher()
    state, _, (granted,) = stitcher.identifier_step(COOKIE.key, None, Claim(COOKIE, "c2", "e1"))
    assert granted.message == Granted(COOKIE, "c2", "e1")
    state, _, (again,) = stitcher.identifier_step(COOKIE.key, state, Claim(COOKIE, "c2", "e2"))
    assert again.message == Granted(COOKIE, "c2", "e2")
    state, _, (conflict,) = stitcher.identifier_step(COOKIE.key, state, Claim(COOKIE, "c3", "e3"))
    assert (conflict.key, conflict.message) == ("c3", Conflict(COOKIE, "c2", "e3"))


def test_repoints_only_ever_move_an_identifier_to_an_older_customer() -> None:
    stitcher = Stitcher()
    state = IdentifierState("c5")
    state, _, _ = stitcher.identifier_step(COOKIE.key, state, Repoint(COOKIE, "c3"))
    state, _, _ = stitcher.identifier_step(COOKIE.key, state, Repoint(COOKIE, "c4"))  # stale
    assert state is not None and state.owner == "c3"
    with pytest.raises(ProtocolViolation, match="repoint of an identifier nobody owns"):
        stitcher.identifier_step(COOKIE.key, None, Repoint(COOKIE, "c1"))


def test_login_merges_the_younger_customer_into_the_older_one() -> None:
    sim = simulate([
        t("w1", "web", "page_view", minutes(0), ("anonymous_id", "cookie")),
        t("w2", "web", "login", minutes(5), ("anonymous_id", "cookie"), ("customer_id", "C1")),
    ])  # fmt: skip
    check_quiescent(sim)
    (merge,) = [r for r in sim.records if isinstance(r, Merge)]
    assert merge.survivor_id == sim.owner(COOKIE.key) == sim.owner(ACCOUNT.key)
    assert merge.survivor_id < merge.alias_id  # the older (the cookie's) survives
    assert (merge.identifier, merge.event_id, merge.rule) == (COOKIE, "w2", "link:anonymous_id")
    alias = sim.customer(merge.alias_id)
    assert alias is not None and alias.status == ALIAS and alias.profile is None
    links = {(r.identifier, r.event_id) for r in sim.records if isinstance(r, IdentityLink)}
    assert links == {(COOKIE, "w1"), (ACCOUNT, "w2")}


def test_two_customer_ids_on_one_touch_are_a_rejected_link_not_a_merge() -> None:
    sim = simulate([t("e", "web", "login", minutes(0), ("customer_id", "A"), ("customer_id", "B"))])
    (rejection,) = [r for r in sim.records if isinstance(r, LinkRejection)]
    assert (rejection.identifier, rejection.rule) == (
        Identifier("customer_id", "B"),
        "limit:customer_id",
    )
    assert sim.owner("customer_id:B") is None  # never linked to anybody


def test_junk_identifiers_never_route_or_link_and_an_unidentified_touch_is_kept() -> None:
    sim = simulate([
        t("e1", "web", "page_view", minutes(0), ("anonymous_id", "null"), ("customer_id", "C1")),
        t("e2", "web", "page_view", minutes(1), ("anonymous_id", "undefined")),
    ])  # fmt: skip
    rules = sorted((r.event_id, r.rule) for r in sim.records if isinstance(r, LinkRejection))
    assert rules == [("e1", "blocked:anonymous_id"), ("e2", "blocked:anonymous_id")]
    assert [key for key, _ in sim.identifier_states()] == ["customer_id:C1"]
    assert len(list(sim.live_customers())) == 2  # e2 is its own (anonymous) customer


def _live(stitcher: Stitcher, key: str, *identifiers: Identifier):
    item = t(f"{key}-1", "web", "page_view", minutes(0), *[(i.kind, i.value) for i in identifiers])
    assign = Assign(item, identifiers[0], identifiers[1:], (), True)
    state, _, sends = stitcher.customer_step(key, None, assign)
    return state, sends


def test_a_frozen_customer_buffers_until_the_merge_is_answered() -> None:
    stitcher = Stitcher()
    state, _ = _live(stitcher, "c9", COOKIE)
    state, _, (handover,) = stitcher.customer_step("c9", state, Propose("c1", ACCOUNT, "x", True))
    assert state.status == FROZEN and isinstance(handover.message, Handover)
    assert handover.key == "c1"
    touch = t("late", "web", "page_view", minutes(1), ("anonymous_id", "cookie"))
    state, records, sends = stitcher.customer_step(
        "c9", state, Assign(touch, COOKIE, (), (), False)
    )
    assert (records, sends, len(state.buffer)) == ([], [], 1)
    with pytest.raises(ProtocolViolation, match="answer to merge offer 7"):
        stitcher.customer_step("c9", state, MergeAccepted("c1", 7))
    state, records, (forwarded,) = stitcher.customer_step("c9", state, MergeAccepted("c1", 1))
    assert state.status == ALIAS and state.merged_into == "c1"
    assert forwarded.key == "c1" and isinstance(forwarded.message, Assign)


def test_a_rejected_merge_thaws_the_customer_and_replays_what_it_buffered() -> None:
    stitcher = Stitcher()
    state, _ = _live(stitcher, "c9", COOKIE)
    state, _, _ = stitcher.customer_step("c9", state, Propose("c1", ACCOUNT, "x", True))
    touch = t("next", "web", "page_view", minutes(1), ("anonymous_id", "cookie"))
    state, _, _ = stitcher.customer_step("c9", state, Assign(touch, COOKIE, (), (), False))
    rejected = MergeRejected("c1", 1, ACCOUNT, "limit:customer_id", False)
    state, records, _ = stitcher.customer_step("c9", state, rejected)
    assert state.status == LIVE and not state.buffer
    assert next(getattr(r, "touch", None) for r in records) == touch  # the buffered touch


@pytest.mark.parametrize(
    "message",
    [
        Assign(t("e", "web", "x", minutes(0), ("anonymous_id", "cookie")), COOKIE, (), (), True),
        Granted(ACCOUNT, "c9", "e"),
        Conflict(ACCOUNT, "c1", "e"),
        MergeRejected("c1", 1, ACCOUNT, "limit:customer_id", False),
    ],
)
def test_messages_impossible_for_a_live_customer_are_refused(message: object) -> None:
    stitcher = Stitcher()
    state, _ = _live(stitcher, "c9", COOKIE)
    with pytest.raises(ProtocolViolation):
        stitcher.customer_step("c9", state, message)  # type: ignore[arg-type]


def test_a_handover_must_come_from_a_younger_customer() -> None:
    stitcher = Stitcher()
    state, _ = _live(stitcher, "c5", COOKIE)
    assert state.profile is not None and state.timeline is not None
    handover = Handover("c1", 1, state.profile, state.timeline, ACCOUNT, "e", True)
    with pytest.raises(ProtocolViolation, match="handover from older customer c1"):
        stitcher.customer_step("c5", state, handover)


def test_every_message_and_state_survives_its_json_form() -> None:
    stitcher = Stitcher()
    item = t("e", "pos", "purchase", minutes(0), ("loyalty_id", "L1"), value="9.50")
    state, _ = _live(stitcher, "c9", Identifier("loyalty_id", "L1"), COOKIE)
    messages = [
        Route(item, Identifier("loyalty_id", "L1"), (COOKIE,), ()),
        Claim(COOKIE, "c9", "e"),
        Repoint(COOKIE, "c1"),
        Assign(item, None, (), (COOKIE,), True),
        Granted(COOKIE, "c9", "e"),
        Conflict(COOKIE, "c1", "e"),
        Propose("c1", COOKIE, "e", False),
        Handover("c9", 2, state.profile, state.timeline, COOKIE, "e", True),
        MergeAccepted("c1", 2),
        MergeRejected("c1", 2, COOKIE, "limit:anonymous_id", True),
        Tick(T0),
    ]
    for message in messages:
        data = message_to_dict(message)
        again = message_from_dict(json.loads(json.dumps(data)))
        assert type(again) is type(message) and message_to_dict(again) == data
    stored = json.loads(json.dumps(state.to_dict()))
    assert stitcher.customer_from_dict(stored).to_dict() == state.to_dict()
    with pytest.raises(ProtocolViolation, match="message_type: unknown 'Nope'"):
        message_from_dict({"message_type": "Nope"})
