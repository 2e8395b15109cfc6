"""Scoring functions on small cases computed by hand, and against brute-force pair lists."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnijourney.evaluation import (
    MatchScores,
    Prediction,
    evaluate,
    exact_matches,
    format_table,
    late_placement,
    pairwise_identity,
    read_prediction,
    wrong_merges,
)
from omnijourney.exceptions import ConfigurationError
from omnijourney.simulator.truth import Truth

# Person P1 has a1 a2 a3 (a3 never seen with the others), P2 has b1 b2, P3 has c1.
TRUTH = {"a1": "P1", "a2": "P1", "a3": "P1", "b1": "P2", "b2": "P2", "c1": "P3"}
COMPONENTS = {"a1": "E1", "a2": "E1", "a3": "E2", "b1": "E3", "b2": "E3", "c1": "E4"}
# The pipeline put a1 a2 and b1 into one customer X and kept a3, b2 and c1 apart.
PREDICTED = {"a1": "X", "a2": "X", "b1": "X", "a3": "Y", "b2": "Z", "c1": "W"}


def test_pairs_by_hand_precision_and_recall_below_one() -> None:
    scores = pairwise_identity(PREDICTED, TRUTH, COMPONENTS)
    # predicted pairs: (a1,a2) (a1,b1) (a2,b1); true pairs: (a1,a2) (a1,a3) (a2,a3) (b1,b2)
    assert (scores.predicted_pairs, scores.true_pairs, scores.correct_pairs) == (3, 4, 1)
    assert scores.precision == pytest.approx(1 / 3)
    assert scores.recall == pytest.approx(1 / 4)
    assert scores.f1 == pytest.approx(2 / 7)
    # linkable pairs are (a1,a2) and (b1,b2); only the first was linked
    assert (scores.achievable_pairs, scores.achievable_correct) == (2, 1)
    assert scores.achievable_recall == pytest.approx(1 / 2)
    assert scores.recall_bound == pytest.approx(2 / 4)
    assert scores.missing == 0


def test_a_perfect_grouping_scores_one() -> None:
    scores = pairwise_identity(TRUTH, TRUTH, COMPONENTS)
    assert scores.precision == scores.recall == scores.f1 == 1.0
    # linking a3 goes beyond the evidence, so everything linkable was linked
    assert scores.achievable_recall == 1.0


def test_unreported_identifiers_are_lone_customers() -> None:
    predicted = {k: v for k, v in PREDICTED.items() if k not in ("a2", "c1")}
    scores = pairwise_identity(predicted, TRUTH)
    assert scores.missing == 2
    assert (scores.predicted_pairs, scores.correct_pairs) == (1, 0)  # only (a1, b1) is left
    assert scores.precision == 0.0 and scores.f1 == 0.0


def test_no_pairs_at_all_is_not_a_division_by_zero() -> None:
    scores = pairwise_identity({"x": "C1"}, {"x": "P1"}, {"x": "E1"})
    assert scores.precision == scores.recall == scores.achievable_recall == 1.0


def _brute_force(predicted: dict[str, str], truth: dict[str, str]) -> tuple[int, int, int]:
    ids = sorted(truth)
    pairs = list(itertools.combinations(ids, 2))
    same_pred = {
        (a, b) for a, b in pairs if a in predicted and predicted.get(a) == predicted.get(b)
    }
    same_true = {(a, b) for a, b in pairs if truth[a] == truth[b]}
    return len(same_pred), len(same_true), len(same_pred & same_true)


@given(
    st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=3),
        st.tuples(st.sampled_from("PQRS"), st.sampled_from(["X", "Y", "Z", None])),
        max_size=25,
    )
)
def test_cell_counting_equals_listing_the_pairs(assign: dict[str, tuple[str, str | None]]) -> None:
    truth = {ident: person for ident, (person, _) in assign.items()}
    predicted = {ident: customer for ident, (_, customer) in assign.items() if customer}
    scores = pairwise_identity(predicted, truth)
    assert (scores.predicted_pairs, scores.true_pairs, scores.correct_pairs) == _brute_force(
        predicted, truth
    )


def test_wrong_merges_count_different_customer_ids() -> None:
    merges = wrong_merges(PREDICTED, TRUTH, {"P1": "C-1", "P2": "C-2"})
    assert (merges.customers, merges.mixed, merges.conflicting) == (4, 1, 1)
    assert merges.examples == ("X",)
    # P2 without an account: mixing people, but no two customer ids in one customer
    merges = wrong_merges(PREDICTED, TRUTH, {"P1": "C-1"})
    assert (merges.mixed, merges.conflicting, merges.examples) == (1, 0, ())
    assert merges.two_customer_ids == 0


def test_two_customer_ids_in_one_customer_and_mixing_through_a_shared_identifier() -> None:
    truth = {"customer_id:C-1": "P1", "email_hash:a": "P1", "customer_id:C-2": "P2", "x": "P2"}
    accounts = {"P1": "C-1", "P2": "C-2"}
    # protection broken: one customer holds both customer ids
    broken = {"customer_id:C-1": "K", "customer_id:C-2": "K", "email_hash:a": "K", "x": "L"}
    merges = wrong_merges(broken, truth, accounts)
    assert (merges.two_customer_ids, merges.conflicting, merges.conflicting_shared) == (1, 1, 0)
    # protection held, but P2's email came along through the tablet both use
    tablet = {
        "customer_id:C-1": "K",
        "device_id:tab": "K",
        "x": "K",
        "customer_id:C-2": "M",
    }
    merges = wrong_merges(tablet, truth, accounts, shared=["device_id:tab"])
    assert (merges.two_customer_ids, merges.conflicting, merges.conflicting_shared) == (0, 1, 1)
    assert merges.examples == ("K",)


def test_journeys_matched_exactly() -> None:
    truth = {"J1": ("e1", "e2", "e3"), "J2": ("e4",)}
    predicted = {"K1": ("e2", "e1"), "K2": ("e3",), "K3": ("e4",), "K4": ("other-run",)}
    scores = exact_matches(predicted, truth)
    # K4 holds no event of this simulation and is not counted
    assert (scores.truth, scores.predicted, scores.matched) == (2, 3, 1)
    assert scores.recall == 0.5 and scores.precision == pytest.approx(1 / 3)
    assert exact_matches({"K": ("e3", "e1", "e2")}, truth).matched == 1  # order is ignored


def test_late_events_must_land_in_exactly_their_journey() -> None:
    truth = {"J1": ("e1", "e2", "e3"), "J2": ("e4", "e5")}
    late = {"e3": "J1", "e5": "J2"}
    split = {"K1": ("e1", "e2"), "K2": ("e3",), "K3": ("e4", "e5")}
    scores = late_placement(split, truth, late, eligible=["e3"])
    assert (scores.late, scores.placed, scores.correct) == (2, 2, 1)
    assert (scores.eligible, scores.eligible_correct) == (1, 0)
    lost = {"K1": ("e1", "e2", "e3")}
    scores = late_placement(lost, truth, late, eligible=["e3"])
    assert (scores.placed, scores.correct, scores.eligible_correct) == (1, 1, 1)
    assert scores.accuracy == 0.5


def _truth() -> Truth:
    return Truth(
        identifiers=TRUTH,
        shared={"d1": ("P1", "P2")},
        components=COMPONENTS,
        customer_ids={"P1": "C-1", "P2": "C-2"},
        journeys={"J1": ("e1", "e2"), "J2": ("e3",)},
        sessions={"J1/1": ("e1",), "J1/2": ("e2",), "J2/1": ("e3",)},
        converted=frozenset({"J1"}),
        late={"e2": {"journey": "J1", "within_lateness": True}},
        duplicates={},
        malformed=0,
        meta={},
        summary={},
    )


def test_evaluate_and_the_table() -> None:
    lines = [
        *(
            f'{{"type": "identifier", "id": "{k}", "customer": "{v}"}}'
            for k, v in PREDICTED.items()
        ),
        '{"type": "journey", "id": "K1", "events": ["e1", "e2"]}',
        '{"type": "journey", "id": "K2", "events": ["e3"]}',
        '{"type": "session", "id": "S1", "events": ["e1", "e2"]}',
        "",
    ]
    predicted = read_prediction(lines)
    result = evaluate(_truth(), predicted)
    assert result.identity.correct_pairs == 1 and result.merges.conflicting == 1
    assert result.journeys.matched == 2 and result.sessions.matched == 0
    assert result.late.correct == 1 and result.shared == 1
    table = format_table(result)
    assert "precision" in table and "0.3333" in table
    assert "0 (must be 0)" in table  # no customer holds two customer ids
    assert "different customer ids  1 (0 through" in table
    assert table.splitlines()[-1].split() == ["e.g.", "wrongly", "merged", "X"]


def test_a_bad_prediction_line_is_named() -> None:
    with pytest.raises(ConfigurationError, match="prediction line 2"):
        read_prediction(['{"type": "identifier", "id": "a", "customer": "X"}', '{"type": "x"}'])
    assert read_prediction([]) == Prediction({}, {}, {})


def test_scores_where_the_evidence_allows_them() -> None:
    # J1 = e1 e2 cannot be reproduced (e2 is unlinkable): the evidence allows V1 = e1, V2 = e2
    truth = dataclasses.replace(
        _truth(),
        evidence_journeys={"V1": ("e1",), "V2": ("e2",), "V3": ("e3",)},
        evidence_sessions={"V1/1": ("e1",), "V2/1": ("e2",), "V3/1": ("e3",)},
        attainable=frozenset({"J2"}),
    )
    predicted = Prediction(
        identifiers=PREDICTED,
        journeys={"K1": ("e1",), "K2": ("e2",), "K3": ("e3",)},
        sessions={"S1": ("e1",), "S2": ("e2", "e3")},
    )
    result = evaluate(truth, predicted)
    assert result.journeys.matched == 1 and result.attainable == 1
    assert result.evidence_journeys == MatchScores(truth=3, predicted=3, matched=3)
    assert result.evidence_sessions == MatchScores(truth=3, predicted=2, matched=1)
    assert result.late.correct == 0 and result.evidence_late is not None
    assert (result.evidence_late.correct, result.evidence_late.eligible_correct) == (1, 1)
    table = format_table(result)
    assert "1 of 2 (0.500)" in table  # the bound: one true journey of two is attainable
    assert "3 of 3 evidence journeys, 3 predicted (recall 1.000, precision 1.000)" in table
    # an older truth file without evidence journeys leaves those rows out
    assert "evidence journeys" not in format_table(evaluate(_truth(), predicted))
