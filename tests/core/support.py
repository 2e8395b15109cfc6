"""Shared helpers of the core tests: touch builders, an offline union-find, invariant checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from streams.core.journeys import Timeline
from streams.core.messages import Topic
from streams.core.model import Identifier, Touch
from streams.core.records import EnrichedTouchpoint, JourneyUpdate, Record, SessionUpdate
from streams.core.simulation import Simulator
from streams.core.stitcher import ALIAS, LIVE, Stitcher

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)

HEX = "0123456789abcdef"


def fake_hash(seed: str) -> str:
    """A 64-hex stand-in for a keyed email/phone hash (no clear PII in tests either)."""
    return "".join(HEX[(ord(char) * 7 + index) % 16] for index, char in enumerate(seed * 64))[:64]


def touch(
    event_id: str,
    channel: str,
    type_: str,
    at: timedelta,
    *identifiers: tuple[str, str],
    value: str | None = None,
    received: timedelta | None = None,
) -> Touch:
    """A touch `at` after T0 (received when it occurred unless told otherwise)."""
    return Touch(
        event_id=event_id,
        channel=channel,
        type=type_,
        occurred_at=T0 + at,
        received_at=T0 + (at if received is None else received),
        identities=tuple(Identifier(kind, value) for kind, value in identifiers),
        value=None if value is None else Decimal(value),
        currency=None if value is None else "EUR",
    )


def minutes(value: float) -> timedelta:
    """Shorthand for a timedelta in minutes."""
    return timedelta(minutes=value)


def hours(value: float) -> timedelta:
    """Shorthand for a timedelta in hours."""
    return timedelta(hours=value)


def days(value: float) -> timedelta:
    """Shorthand for a timedelta in days."""
    return timedelta(days=value)


def simulate(
    touches: Iterable[Touch],
    partitions: int = 1,
    seed: int = 0,
    stitcher: Stitcher | None = None,
    roundtrip: bool = False,
) -> Simulator:
    """Run touches (in this input order) through a fresh simulator, with the limit check on."""
    sim = Simulator(
        stitcher or Stitcher(),
        partitions,
        seed,
        roundtrip=roundtrip,
        observer=check_limits,
    )
    sim.submit(touches)
    sim.run()
    return sim


class UnionFind:
    """The offline reference: connected components of identifiers linked by touches."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        """Root of an item's component (adds the item if new)."""
        self.parent.setdefault(item, item)
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, left: str, right: str) -> None:
        """Join two components."""
        self.parent[self.find(left)] = self.find(right)

    def groups(self) -> set[frozenset[str]]:
        """Every component as a set of items."""
        out: dict[str, set[str]] = {}
        for item in self.parent:
            out.setdefault(self.find(item), set()).add(item)
        return {frozenset(group) for group in out.values()}


def offline_groups(touches: Iterable[Touch]) -> set[frozenset[str]]:
    """Union-find over the identifiers that appear together on a touch."""
    union = UnionFind()
    for item in touches:
        keys = [identifier.key for identifier in item.identities]
        for key in keys:
            union.find(key)
        for other in keys[1:]:
            union.union(keys[0], other)
    return union.groups()


def simulated_groups(sim: Simulator) -> set[frozenset[str]]:
    """Identifiers grouped by the live customer owning them (following aliases)."""
    out: dict[str, set[str]] = {}
    for key, _ in sim.identifier_states():
        owner = sim.owner(key)
        assert owner is not None
        out.setdefault(owner, set()).add(key)
    return {frozenset(group) for group in out.values()}


def check_limits(sim: Simulator, topic: Topic, key: str) -> None:
    """Observer: after every step, the customer touched keeps every limit (held + claims)."""
    if topic != Topic.CUSTOMER:
        return
    state = sim.customer(key)
    if state is None or state.profile is None:
        return
    limits = sim.stitcher.config.identifiers
    for kind, rule in limits.items():
        count = state.profile.count(kind)
        assert count <= rule.max_per_customer, (
            f"seed {sim.seed} P={sim.partitions}: {key} holds {count} {kind} "
            f"(limit {rule.max_per_customer}) after step {sim.steps}"
        )


def check_quiescent(sim: Simulator) -> None:
    """Invariants once every message is delivered: settled, consistent, repointed."""
    where = f"seed {sim.seed} P={sim.partitions}"
    for state in sim.customer_states():
        assert state.status in (LIVE, ALIAS), f"{where}: {state.customer_id} is {state.status}"
        assert not state.buffer, f"{where}: {state.customer_id} still buffers"
        if state.status == ALIAS:
            assert state.merged_into < state.customer_id, f"{where}: alias to a younger one"
            continue
        assert state.profile is not None
        assert state.profile.is_settled(), f"{where}: {state.customer_id} has open claims"
        for identifier in state.profile.identifiers():
            owner = sim.identifiers[_partition(sim, identifier.key)][identifier.key].owner
            assert owner == state.customer_id, f"{where}: {identifier.key} points at {owner}"
    for key, identifier_state in sim.identifier_states():
        owner = sim.customer(identifier_state.owner)
        assert owner is not None and owner.status == LIVE, f"{where}: {key} not repointed"
        assert owner.profile is not None
        kind, _, value = key.partition(":")
        assert owner.profile.holds(Identifier(kind, value)), f"{where}: {key} not in profile"


def _partition(sim: Simulator, key: str) -> int:
    from streams.core.ids import partition_of

    return partition_of(key, sim.partitions)


def final_view(
    records: Iterable[Record], name: Callable[[str], str] = lambda _: "C"
) -> dict[tuple[str, str], dict[str, object]]:
    """The current version of every touchpoint, session and journey, canonically.

    Customer ids are names chosen by arrival order, so `name` maps them to something stable
    (an identity group); versions and supersession links describe the history, not the result.
    """
    latest: dict[tuple[str, str], Record] = {}
    for record in records:
        if isinstance(record, EnrichedTouchpoint):
            key = ("touch", record.touch.event_id)
        elif isinstance(record, SessionUpdate):
            key = ("session", record.session_id)
        elif isinstance(record, JourneyUpdate):
            key = ("journey", record.journey_id)
        else:
            continue
        previous = latest.get(key)
        assert previous is None or previous.version < record.version, f"{key}: version reused"
        latest[key] = record
    view: dict[tuple[str, str], dict[str, object]] = {}
    for key, record in latest.items():
        if getattr(record, "superseded_by", None) is not None:
            continue
        data = record.to_dict()
        for volatile in ("version", "supersedes", "superseded_by"):
            data.pop(volatile, None)
        data["customer_id"] = name(str(data["customer_id"]))
        view[key] = data
    return view


def timeline_view(
    touches: Sequence[Touch], name: str = "C", stitcher: Stitcher | None = None
) -> dict[tuple[str, str], dict[str, object]]:
    """Reference journeys: one customer's touches added in event-time order, no protocol."""
    timeline = Timeline(name, (stitcher or Stitcher()).rules)
    records: list[Record] = []
    for item in sorted(touches, key=lambda t: (t.occurred_us, t.event_id)):
        if not timeline.knows(item.event_id):
            records.extend(timeline.add(item))
    return final_view(records, lambda customer: customer)


def dump(records: Iterable[Record]) -> str:
    """Byte-exact serialization of records."""
    return json.dumps([record.to_dict() for record in records], sort_keys=True)
