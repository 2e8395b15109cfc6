"""Scoring the pipeline against a simulation's ground truth: pure functions over mappings.

* identity: pairwise precision / recall / F1 over identifier pairs, counted per (predicted
  customer, true person) cell rather than by listing pairs, plus recall against what the
  evidence allows (pairs inside one evidence component of the truth);
* wrong merges: predicted customers holding two customer ids (merge protection must make this
  zero), customers holding identifiers of people with different customer ids (telling those
  that hold an identifier the people share, such as the family tablet: evidence no resolver
  can tell apart) and, more broadly, of different people;
* journeys and sessions matched exactly (same set of event ids), against the true ones and
  against the *evidence journeys* (what the rules cut from each evidence component's touches:
  the best any resolver can do), with the share of true journeys that are attainable at all;
* late events (nightly till uploads) placed in exactly their true (and evidence) journey.

The reading side (ClickHouse) turns the pipeline's tables into a `Prediction`; the same
mappings can come from a JSON lines file (`read_prediction`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from omnijourney.exceptions import ConfigurationError
from omnijourney.simulator.truth import Truth


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator, 1.0 when there was nothing to get right."""
    return 1.0 if denominator == 0 else numerator / denominator


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 0.0 if total == 0 else 2 * precision * recall / total


@dataclass(frozen=True, slots=True)
class PairScores:
    """Pairwise identity scores over the identifiers of the truth."""

    identifiers: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    achievable_pairs: int
    achievable_correct: int
    missing: int
    """Identifiers of the truth the pipeline never reported (scored as lone identifiers)."""

    @property
    def precision(self) -> float:
        """Share of predicted same-customer pairs that are one person."""
        return _ratio(self.correct_pairs, self.predicted_pairs)

    @property
    def recall(self) -> float:
        """Share of same-person pairs the pipeline put in one customer."""
        return _ratio(self.correct_pairs, self.true_pairs)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        return _f1(self.precision, self.recall)

    @property
    def achievable_recall(self) -> float:
        """Recall over the pairs the evidence links (same evidence component)."""
        return _ratio(self.achievable_correct, self.achievable_pairs)

    @property
    def recall_bound(self) -> float:
        """The best recall any resolver can reach on this evidence."""
        return _ratio(self.achievable_pairs, self.true_pairs)


def pairwise_identity(
    predicted: Mapping[str, str],
    truth: Mapping[str, str],
    components: Mapping[str, str] | None = None,
) -> PairScores:
    """Pair scores of a predicted grouping {identifier: customer} against {identifier: person}.

    Only identifiers of the truth are scored (shared ones are left out of it beforehand);
    one the pipeline never reported counts as a customer of its own. With `components`
    ({identifier: evidence component}) the achievable recall is computed too.
    """
    cells: Counter[tuple[str, str]] = Counter()
    customers: Counter[str] = Counter()
    people: Counter[str] = Counter()
    component_cells: Counter[tuple[str, str]] = Counter()
    component_sizes: Counter[str] = Counter()
    missing = 0
    for identifier, person in truth.items():
        people[person] += 1
        customer = predicted.get(identifier)
        if customer is None:
            missing += 1
        else:
            cells[customer, person] += 1
            customers[customer] += 1
        if components is not None:
            component = components[identifier]
            component_sizes[component] += 1
            if customer is not None:
                component_cells[customer, component] += 1
    return PairScores(
        identifiers=len(truth),
        true_pairs=sum(map(_pairs, people.values())),
        predicted_pairs=sum(map(_pairs, customers.values())),
        correct_pairs=sum(map(_pairs, cells.values())),
        achievable_pairs=sum(map(_pairs, component_sizes.values())),
        achievable_correct=sum(map(_pairs, component_cells.values())),
        missing=missing,
    )


@dataclass(frozen=True, slots=True)
class MergeErrors:
    """Predicted customers that hold more than one real person."""

    customers: int
    mixed: int
    """Customers holding identifiers of two or more people."""
    conflicting: int
    """Customers holding identifiers of people with different customer ids (must be 0)."""
    examples: tuple[str, ...] = ()
    """A few conflicting customers, to look at."""
    two_customer_ids: int = 0
    """Customers holding two different customer ids (merge protection: must be 0)."""
    conflicting_shared: int = 0
    """Conflicting customers that hold an identifier the people share (the family tablet)."""


CUSTOMER_ID: Final = "customer_id:"


def wrong_merges(
    predicted: Mapping[str, str],
    truth: Mapping[str, str],
    customer_ids: Mapping[str, str],
    examples: int = 5,
    shared: Iterable[str] = (),
) -> MergeErrors:
    """Customers mixing people, those mixing people with different customer ids (and of
    those, the ones holding an identifier of `shared`), those holding two customer ids."""
    people_of: defaultdict[str, set[str]] = defaultdict(set)
    accounts: Counter[str] = Counter()
    sharing: set[str] = set()
    shared_ids = set(shared)
    for identifier, customer in predicted.items():
        person = truth.get(identifier)
        if person is not None:
            people_of[customer].add(person)
        accounts[customer] += identifier.startswith(CUSTOMER_ID)
        if identifier in shared_ids:
            sharing.add(customer)
    mixed = conflicting = conflicting_shared = 0
    shown: list[str] = []
    for customer in sorted(people_of):
        people = people_of[customer]
        if len(people) < 2:
            continue
        mixed += 1
        if len({customer_ids[p] for p in people if p in customer_ids}) > 1:
            conflicting += 1
            conflicting_shared += customer in sharing
            if len(shown) < examples:
                shown.append(customer)
    two = sum(1 for n in accounts.values() if n > 1)
    return MergeErrors(len(people_of), mixed, conflicting, tuple(shown), two, conflicting_shared)


@dataclass(frozen=True, slots=True)
class MatchScores:
    """Groups of events (journeys or sessions) reproduced exactly."""

    truth: int
    predicted: int
    """Predicted groups holding at least one event of the truth."""
    matched: int

    @property
    def precision(self) -> float:
        """Share of predicted groups that are exactly a true one."""
        return _ratio(self.matched, self.predicted)

    @property
    def recall(self) -> float:
        """Share of true groups reproduced exactly."""
        return _ratio(self.matched, self.truth)


def exact_matches(
    predicted: Mapping[str, Iterable[str]], truth: Mapping[str, Iterable[str]]
) -> MatchScores:
    """How many true groups of event ids the prediction holds exactly (order ignored)."""
    true_sets = {frozenset(events) for events in truth.values()}
    true_events = set().union(*true_sets) if true_sets else set()
    predicted_sets = [frozenset(events) for events in predicted.values()]
    relevant = [group for group in predicted_sets if not group.isdisjoint(true_events)]
    matched = sum(1 for group in set(relevant) if group in true_sets)
    return MatchScores(len(true_sets), len(relevant), matched)


@dataclass(frozen=True, slots=True)
class LateScores:
    """Late (nightly-batch) events and where the pipeline put them."""

    late: int
    placed: int
    """In some predicted journey."""
    correct: int
    """In a predicted journey that is exactly their true journey."""
    eligible: int
    """Within the allowed lateness behind their person's watermark."""
    eligible_correct: int

    @property
    def accuracy(self) -> float:
        """Share of late events placed exactly right."""
        return _ratio(self.correct, self.late)


def late_placement(
    predicted_journeys: Mapping[str, Iterable[str]],
    truth_journeys: Mapping[str, Iterable[str]],
    late: Mapping[str, str],
    eligible: Iterable[str] = (),
) -> LateScores:
    """Late events (event id -> true journey id) placed in exactly their true journey."""
    home: dict[str, frozenset[str]] = {}
    for events in predicted_journeys.values():
        group = frozenset(events)
        for event_id in group:
            if event_id in late:
                home[event_id] = group
    within = set(eligible)
    correct = eligible_correct = 0
    truth_sets = {journey: frozenset(events) for journey, events in truth_journeys.items()}
    for event_id, journey in late.items():
        if home.get(event_id) == truth_sets.get(journey):
            correct += 1
            eligible_correct += event_id in within
    return LateScores(len(late), len(home), correct, len(within & set(late)), eligible_correct)


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the pipeline produced, as plain mappings."""

    identifiers: Mapping[str, str]
    """identifier `kind:value` -> customer id."""
    journeys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sessions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Every score of one comparison."""

    identity: PairScores
    merges: MergeErrors
    journeys: MatchScores
    sessions: MatchScores
    late: LateScores
    shared: int
    evidence_journeys: MatchScores | None = None
    """Against the journeys the evidence allows (None: the truth file predates them)."""
    evidence_sessions: MatchScores | None = None
    evidence_late: LateScores | None = None
    attainable: int = 0
    """True journeys that are evidence journeys too: the most any pipeline can match."""


def _homes(journeys: Mapping[str, Iterable[str]], events: Iterable[str]) -> dict[str, str]:
    """event id -> the journey holding it, for the given events."""
    wanted = set(events)
    return {e: journey for journey, group in journeys.items() for e in group if e in wanted}


def evaluate(truth: Truth, predicted: Prediction) -> Evaluation:
    """Score a prediction against the truth."""
    late = {event_id: record["journey"] for event_id, record in truth.late.items()}
    eligible = [e for e, record in truth.late.items() if record.get("within_lateness")]
    journeys = sessions = late_scores = None
    if truth.evidence_journeys:
        journeys = exact_matches(predicted.journeys, truth.evidence_journeys)
        sessions = exact_matches(predicted.sessions, truth.evidence_sessions)
        homes = _homes(truth.evidence_journeys, late)
        late_scores = late_placement(predicted.journeys, truth.evidence_journeys, homes, eligible)
    return Evaluation(
        identity=pairwise_identity(predicted.identifiers, truth.identifiers, truth.components),
        merges=wrong_merges(
            predicted.identifiers, truth.identifiers, truth.customer_ids, shared=truth.shared
        ),
        journeys=exact_matches(predicted.journeys, truth.journeys),
        sessions=exact_matches(predicted.sessions, truth.sessions),
        late=late_placement(predicted.journeys, truth.journeys, late, eligible),
        shared=len(truth.shared),
        evidence_journeys=journeys,
        evidence_sessions=sessions,
        evidence_late=late_scores,
        attainable=len(truth.attainable),
    )


PREDICTION_SQL: Final = {
    "identifiers": "SELECT concat(identifier_kind, ':', identifier_value), customer_id"
    " FROM customer_identifiers",
    "journeys": "SELECT journey_id, arrayMap(x -> x.2, arraySort(groupArray((occurred_at,"
    " event_id)))) FROM touchpoints_current WHERE journey_id != '' GROUP BY journey_id",
    "sessions": "SELECT session_id, arrayMap(x -> x.2, arraySort(groupArray((occurred_at,"
    " event_id)))) FROM touchpoints_current WHERE session_id != '' GROUP BY session_id",
}
"""What the pipeline wrote to ClickHouse, as the rows `prediction_from_rows` takes."""


def prediction_from_rows(
    identifiers: Iterable[Sequence[str]],
    journeys: Iterable[Sequence[Any]],
    sessions: Iterable[Sequence[Any]],
) -> Prediction:
    """A Prediction from the result rows of PREDICTION_SQL (aliases already resolved)."""
    return Prediction(
        identifiers={identifier: customer for identifier, customer in identifiers},
        journeys={journey: tuple(events) for journey, events in journeys},
        sessions={session: tuple(events) for session, events in sessions},
    )


def prediction_from_query(query: Callable[[str], Iterable[Sequence[Any]]]) -> Prediction:
    """A Prediction from ClickHouse: `query(sql)` returns PREDICTION_SQL's result rows."""
    rows = {name: query(sql) for name, sql in PREDICTION_SQL.items()}
    return prediction_from_rows(rows["identifiers"], rows["journeys"], rows["sessions"])


def read_prediction(lines: Iterable[bytes | str]) -> Prediction:
    """Parse JSON lines: `{type: identifier, id, customer}`, `{type: journey|session, ...}`."""
    identifiers: dict[str, str] = {}
    journeys: dict[str, tuple[str, ...]] = {}
    sessions: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record: dict[str, Any] = orjson.loads(line)
            kind = record["type"]
            if kind == "identifier":
                identifiers[record["id"]] = record["customer"]
            elif kind == "journey":
                journeys[record["id"]] = tuple(record["events"])
            elif kind == "session":
                sessions[record["id"]] = tuple(record["events"])
            else:
                raise KeyError(f"unknown type {kind!r}")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"prediction line {number}: {exc}") from None
    return Prediction(identifiers, journeys, sessions)


def _matched(scores: MatchScores, of: str) -> str:
    return (
        f"{scores.matched:,} of {scores.truth:,} {of}, {scores.predicted:,} predicted "
        f"(recall {scores.recall:.3f}, precision {scores.precision:.3f})"
    )


def _late(scores: LateScores) -> str:
    return (
        f"{scores.correct:,} of {scores.late:,} ({scores.accuracy:.3f}); within lateness "
        f"{scores.eligible_correct:,} of {scores.eligible:,}"
    )


def _stitching_rows(result: Evaluation) -> list[tuple[str, str]]:
    """Journeys, sessions and late events, also where the evidence allows (when known)."""
    journeys, sessions, late = result.journeys, result.sessions, result.late
    rows = [("journeys matched exactly", _matched(journeys, "true"))]
    evidence = result.evidence_journeys
    if evidence is not None:
        bound = _ratio(result.attainable, journeys.truth)
        rows += [
            (
                "  true journeys the evidence allows (bound)",
                f"{result.attainable:,} of {journeys.truth:,} ({bound:.3f})",
            ),
            ("  where the evidence allows them", _matched(evidence, "evidence journeys")),
        ]
    rows.append(("sessions matched exactly", _matched(sessions, "true")))
    if result.evidence_sessions is not None:
        rows.append(
            ("  where the evidence allows them", _matched(result.evidence_sessions, "evidence"))
        )
    rows.append(("late events in their true journey", f"{_late(late)}; placed {late.placed:,}"))
    if result.evidence_late is not None:
        rows.append(("  where the evidence allows it", _late(result.evidence_late)))
    return rows


def format_table(result: Evaluation) -> str:
    """The evaluation as a plain-text table."""
    identity, merges = result.identity, result.merges
    rows = [
        ("identity resolution, identifier pairs", ""),
        ("  precision", f"{identity.precision:.4f}"),
        ("  recall", f"{identity.recall:.4f}"),
        ("  F1", f"{identity.f1:.4f}"),
        ("  recall where the evidence allows it", f"{identity.achievable_recall:.4f}"),
        ("  upper bound of recall (evidence)", f"{identity.recall_bound:.4f}"),
        (
            "  pairs: true / linkable / predicted / correct",
            f"{identity.true_pairs:,} / {identity.achievable_pairs:,} / "
            f"{identity.predicted_pairs:,} / {identity.correct_pairs:,}",
        ),
        (
            "  identifiers scored / never reported / shared",
            f"{identity.identifiers:,} / {identity.missing:,} / {result.shared:,}",
        ),
        ("customers holding two customer ids", f"{merges.two_customer_ids:,} (must be 0)"),
        (
            "customers mixing people with different customer ids",
            f"{merges.conflicting:,} ({merges.conflicting_shared:,} through an identifier the "
            "people share, e.g. a family tablet)",
        ),
        ("customers mixing people", f"{merges.mixed:,} of {merges.customers:,}"),
        *_stitching_rows(result),
    ]
    if merges.examples:
        rows.append(("  e.g. wrongly merged", ", ".join(merges.examples)))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}".rstrip() for label, value in rows)
