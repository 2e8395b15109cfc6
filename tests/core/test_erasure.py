"""Erasure in the pure core: every key of one person goes from both tables, nothing else does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnijourney.exceptions import ProtocolViolation
from streams.core.delivery import MessageId
from streams.core.erasure import (
    CUSTOMERS_STORE,
    DONE,
    IDENTIFIERS_STORE,
    SETTLING,
    Erasure,
    Seal,
    Settle,
    Start,
    Sweep,
    begin,
    erasure_message_from_dict,
    erasure_message_to_dict,
    on_answer,
)
from streams.core.messages import (
    CustomerErased,
    EraseCustomer,
    EraseIdentifier,
    Handover,
    IdentifierErased,
    MergeAccepted,
    MergeRejected,
    Propose,
    Send,
    Topic,
    message_to_dict,
)
from streams.core.model import Identifier, Touch
from streams.core.simulation import Simulator
from streams.core.stitcher import ALIAS, FROZEN, CustomerState, Stitcher
from tests.core.support import T0, fake_hash, hours, minutes, simulate
from tests.core.support import touch as t

EMAIL = fake_hash("ann-email")
PHONE = fake_hash("ann-phone")
ANN_KEYS = {
    "anonymous_id:ann-cookie",
    "loyalty_id:ann-card",
    f"email_hash:{EMAIL}",
    f"phone_hash:{PHONE}",
}


def ann_and_bob() -> list[Touch]:
    """Ann: a web profile (cookie, email) and a store profile (card, phone), merged by a login
    carrying cookie and card; Bob: someone else entirely."""
    return [
        t("a1", "web", "page_view", minutes(0), ("anonymous_id", "ann-cookie")),
        t("a2", "web", "signup", minutes(3), ("anonymous_id", "ann-cookie"),
          ("email_hash", EMAIL)),
        t("a3", "pos", "purchase", hours(2), ("loyalty_id", "ann-card"), value="9.90"),
        t("a4", "callcenter", "call_started", hours(3), ("phone_hash", PHONE),
          ("loyalty_id", "ann-card")),
        t("b1", "web", "page_view", minutes(1), ("anonymous_id", "bob-cookie")),
        t("b2", "pos", "purchase", hours(1), ("anonymous_id", "bob-cookie"),
          ("loyalty_id", "bob-card"), value="4.00"),
        t("a5", "web", "login", hours(4), ("anonymous_id", "ann-cookie"),
          ("loyalty_id", "ann-card")),
    ]  # fmt: skip


def _person_ids(sim: Simulator, key: str) -> set[str]:
    """Every customer id the person behind an identifier had: the survivor and its aliases."""
    survivor = sim.owner(key)
    assert survivor is not None
    return {s.customer_id for s in sim.customer_states() if sim.resolve(s.customer_id) == survivor}


def _state_json(sim: Simulator) -> str:
    identifiers = {key: state.to_dict() for key, state in sim.identifier_states()}
    customers = {state.customer_id: state.to_dict() for state in sim.customer_states()}
    return json.dumps({"identifiers": identifiers, "customers": customers}, sort_keys=True)


def _others(sim: Simulator, ann: set[str]) -> dict[str, object]:
    identifiers = {k: s.to_dict() for k, s in sim.identifier_states() if k not in ANN_KEYS}
    customers = {s.customer_id: s.to_dict() for s in sim.customer_states()
                 if s.customer_id not in ann}  # fmt: skip
    return {"identifiers": identifiers, "customers": customers}


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    partitions=st.integers(1, 4),
    by=st.sampled_from(sorted(ANN_KEYS)),
)
def test_erasing_by_any_identifier_removes_every_key_of_the_person_and_nothing_else(
    seed: int, partitions: int, by: str
) -> None:
    sim = simulate(ann_and_bob(), partitions, seed, roundtrip=True)
    ann = _person_ids(sim, by)
    assert len(ann) >= 2  # merged from several profiles: a survivor and its aliases
    others = _others(sim, ann)

    sim.erase("req-1", [by], T0 + hours(5))
    sim.run()

    erasure = sim.erasures["req-1"]
    assert erasure.phase == SETTLING
    assert set(erasure.customer_ids()) == ann
    assert set(erasure.identifier_keys()) == ANN_KEYS
    assert erasure.removed == {IDENTIFIERS_STORE: 4, CUSTOMERS_STORE: len(ann)}
    remaining = _state_json(sim)
    for value in [*ann, *ANN_KEYS, EMAIL, PHONE, "ann-cookie", "ann-card"]:
        assert value not in remaining
    assert _others(sim, ann) == others  # Bob untouched, byte for byte


def test_erasing_again_removes_nothing_and_still_settles() -> None:
    sim = simulate(ann_and_bob(), 2, 7)
    sim.erase("req-1", ["loyalty_id:ann-card"], T0 + hours(5))
    sim.run()
    before = _state_json(sim)
    sim.erase("req-2", ["loyalty_id:ann-card"], T0 + hours(6))
    sim.run()
    again = sim.erasures["req-2"]
    assert again.phase == SETTLING
    assert again.removed == {IDENTIFIERS_STORE: 0, CUSTOMERS_STORE: 0}
    assert again.customer_ids() == [] and again.identifier_keys() == ["loyalty_id:ann-card"]
    assert _state_json(sim) == before


def test_an_unknown_identifier_settles_with_nothing_removed() -> None:
    sim = simulate(ann_and_bob())
    sim.erase("req-1", ["device_id:never-seen"], T0)
    sim.run()
    assert sim.erasures["req-1"].phase == SETTLING
    assert sim.erasures["req-1"].removed == {IDENTIFIERS_STORE: 0, CUSTOMERS_STORE: 0}


def test_a_new_touch_after_the_erasure_starts_a_new_customer() -> None:
    sim = simulate(ann_and_bob())
    old = sim.owner("anonymous_id:ann-cookie")
    sim.erase("req-1", ["anonymous_id:ann-cookie"], T0 + hours(5))
    sim.run()
    sim.submit([t("a9", "web", "page_view", hours(6), ("anonymous_id", "ann-cookie"))])
    sim.run()
    new = sim.owner("anonymous_id:ann-cookie")
    assert new is not None and new != old
    assert sim.owner("loyalty_id:ann-card") is None


def test_the_stages_answer_the_coordinator_and_return_no_state() -> None:
    stitcher = Stitcher()
    state, records, sends = stitcher.identifier_step("device_id:x", None, EraseIdentifier("r"))
    assert state is None and records == []
    assert sends == [Send(Topic.ERASURE, "r", IdentifierErased("r", "device_id:x", "", 0))]
    customer, records, sends = stitcher.customer_step("c1", None, EraseCustomer("r"))
    assert customer is None
    assert sends == [Send(Topic.ERASURE, "r", CustomerErased("r", "c1", 0, "", (), ()))]
    alias = CustomerState("c2")
    alias.status, alias.merged_into = ALIAS, "c1"
    customer, _, sends = stitcher.customer_step("c2", alias, EraseCustomer("r"))
    assert customer is None
    assert sends == [Send(Topic.ERASURE, "r", CustomerErased("r", "c2", 1, "c1", (), ()))]


def _frozen(stitcher: Stitcher) -> tuple[CustomerState, Handover]:
    """A customer that offered its state to an older one and waits for the answer."""
    sim = simulate([t("e1", "web", "page_view", minutes(0), ("anonymous_id", "k"))], 1, 0, stitcher)
    (state,) = list(sim.customer_states())
    state, _, sends = stitcher.customer_step(
        state.customer_id,
        state,
        Propose("0", Identifier("device_id", "d"), "e2", False),
    )
    assert state is not None and state.status == FROZEN
    (send,) = sends
    assert isinstance(send.message, Handover)
    return state, send.message


def test_a_frozen_customer_erases_once_its_merge_is_rejected() -> None:
    stitcher = Stitcher()
    state, handover = _frozen(stitcher)
    state, _, sends = stitcher.customer_step(state.customer_id, state, EraseCustomer("r"))
    assert state is not None and sends == []  # buffered until the merge is answered
    rejected = MergeRejected("0", handover.epoch, handover.identifier, "limit:x", False)
    after, _, sends = stitcher.customer_step(state.customer_id, state, rejected)
    assert after is None
    (answer,) = [s.message for s in sends]
    assert isinstance(answer, CustomerErased)
    assert answer.identifiers == (Identifier("anonymous_id", "k"),)


def test_a_frozen_customer_forwards_the_erasure_to_its_survivor_once_merged() -> None:
    stitcher = Stitcher()
    state, handover = _frozen(stitcher)
    state, _, _ = stitcher.customer_step(state.customer_id, state, EraseCustomer("r"))
    assert state is not None
    after, _, sends = stitcher.customer_step(
        state.customer_id, state, MergeAccepted("0", handover.epoch)
    )
    assert after is not None and after.status == ALIAS
    assert sends == [Send(Topic.CUSTOMER, "0", EraseCustomer("r"))]


def test_the_coordinator_records_positions_and_ignores_repeats() -> None:
    erasure, sends = begin("r", ["loyalty_id:c", "anonymous_id:k"], True, T0)
    assert [s.key for s in sends] == ["anonymous_id:k", "loyalty_id:c"]
    answer = IdentifierErased("r", "anonymous_id:k", "c9", 1)
    sends = on_answer(erasure, answer, MessageId("i2", 40, 0), T0)
    assert sends == [Send(Topic.CUSTOMER, "c9", EraseCustomer("r"))]
    assert on_answer(erasure, answer, MessageId("i2", 41, 0), T0) == []  # answered already
    on_answer(erasure, IdentifierErased("r", "loyalty_id:c", "c9", 1), MessageId("i0", 7, 0), T0)
    done = on_answer(
        erasure, CustomerErased("r", "c9", 1, "", (), ()), MessageId("c1", 3, 0), T0 + hours(1)
    )
    assert done == [Settle("r", 0)]
    assert erasure.positions == {"i2": 40, "i0": 7, "c1": 3}
    assert [s.keys_removed for s in erasure.stores] == [2, 1]


def test_the_later_phases_build_one_receipt_and_keep_no_personal_data() -> None:
    erasure, _ = begin("r", ["anonymous_id:k"], False, T0)
    on_answer(erasure, IdentifierErased("r", "anonymous_id:k", "", 1), None, T0)
    with pytest.raises(ProtocolViolation):
        erasure.swept({}, T0)
    sweep = erasure.published({"kafka.journeys.updates": 0}, {"journeys.updates:0": 5}, T0)
    assert sweep == Sweep("r", 0)
    seal = erasure.swept({"touchpoints": 3}, T0 + hours(1))
    stores = erasure.receipt_stores(seal, lambda table: f"clickhouse.{table}")
    assert [s.store for s in stores] == [
        IDENTIFIERS_STORE,
        CUSTOMERS_STORE,
        "kafka.journeys.updates",
        "clickhouse.touchpoints",
    ]
    again = Erasure.from_dict(json.loads(json.dumps(erasure.to_dict())))
    assert again.to_dict() == erasure.to_dict()
    erasure.seal(T0 + hours(1))
    stored = json.dumps(erasure.to_dict())
    assert erasure.phase == DONE and "anonymous_id" not in stored
    assert Erasure.from_dict(json.loads(stored)).phase == DONE


@pytest.mark.parametrize(
    "message",
    [
        Start("r", ("anonymous_id:k",), True),
        Settle("r", 2),
        Sweep("r", 0),
        Seal("r", {"touchpoints": 4}, T0),
        IdentifierErased("r", "anonymous_id:k", "c", 1),
        CustomerErased("r", "c", 1, "", ("c2",), (Identifier("anonymous_id", "k"),)),
    ],
)
def test_coordinator_messages_survive_their_json_form(message: object) -> None:
    data = json.loads(json.dumps(erasure_message_to_dict(message)))  # type: ignore[arg-type]
    assert erasure_message_from_dict(data) == message


def test_the_coordinator_refuses_other_messages() -> None:
    with pytest.raises(ProtocolViolation):
        erasure_message_from_dict(message_to_dict(EraseCustomer("r")))
    with pytest.raises(ProtocolViolation):
        erasure_message_from_dict({"message_type": "Seal", "request_id": "r"})
