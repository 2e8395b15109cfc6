"""Ground truth: who is behind every identifier, the true journeys and sessions, late events.

`TruthBuilder` follows the simulation (pure, incremental: a journey is written out when the
person's next touch closes it) and `read_truth` reads the JSON lines back for `evaluate`.

Identifiers are keyed `kind:value` exactly as the pipeline sees them: emails and phone
numbers as their keyed hashes. An identifier used by two people (the family tablet) is
*shared*: it has no single true owner and is left out of the pairwise scores. Evidence
components group a person's identifiers that co-occur, directly or through a chain, on some
valid event: identifiers in different components of one person cannot be linked by any
resolver, which bounds the achievable recall.

The same bound applies to journeys: a resolver can only stitch together the touches whose
identifiers the evidence links, so the *evidence journeys* are what the journey rules cut from
each evidence component's touches (touches that carry only shared identifiers form a group of
their own per identifier). A true journey that is also an evidence journey is attainable; the
others cannot come out of any pipeline (a cash purchase nobody can tie to the shopper splits
the journey it ended, and joins the shopper's browsing after it to the one before).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from omnijourney.exceptions import ConfigurationError
from omnijourney.simulator.behaviour import Touch
from omnijourney.simulator.config import TruthRules
from omnijourney.simulator.events import iso
from omnijourney.simulator.population import Person

SHARED: Final = -1
_ONLINE: Final = frozenset({"web", "app"})


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """One line of the truth file."""

    type: str
    data: dict[str, Any]

    def __post_init__(self) -> None:
        if "type" in self.data:
            raise ValueError("a truth record's data cannot have a 'type' field")

    def line(self) -> bytes:
        """The record as one JSON line."""
        return orjson.dumps({"type": self.type, **self.data}) + b"\n"


def truth_key(kind: str, value: str, key: str) -> str:
    """The identifier as the pipeline sees it (`kind:value`, hashed for email/phone)."""
    return key or f"{kind}:{value}"


class _Journey:
    __slots__ = ("converted", "end", "events", "journey_id", "late", "serial", "tags")

    def __init__(self, journey_id: str, serial: int = -1) -> None:
        self.journey_id = journey_id
        self.serial = serial
        self.events: list[tuple[int, str, str, str]] = []
        """(occurred, event_id, channel, type) in event-time order."""
        self.converted: tuple[str, str] | None = None
        self.end = 0
        self.late = 0
        self.tags: set[str] = set()

    def joins(self, ts: int, type_: str, rules: TruthRules) -> bool:
        """Whether a touch after the journey's last one still belongs to it."""
        if self.converted is not None and type_ not in rules.follow_up_types:
            return False
        return ts <= self.end

    def add(self, ts: int, event_id: str, channel: str, type_: str, rules: TruthRules) -> None:
        """Append a touch that sorts after the journey's touches."""
        self.events.append((ts, event_id, channel, type_))
        if self.converted is None:
            if type_ in rules.conversion_types:
                self.converted = (event_id, channel)
                self.end = ts + rules.follow_up_window
            else:
                self.end = min(ts + rules.inactivity, self.events[0][0] + rules.max_duration)

    def sessions(self, rules: TruthRules) -> list[list[str]]:
        """The journey's sessions: each channel's touches cut by its gap and length."""
        sessions: list[list[str]] = []
        current: dict[str, tuple[int, int, list[str]]] = {}
        for ts, event_id, channel, _ in self.events:
            gap, longest = rules.session(channel)
            session = current.get(channel)
            if session is None or ts - session[1] > gap or ts - session[0] > longest:
                events = [event_id]
                sessions.append(events)
                current[channel] = (ts, ts, events)
            else:
                session[2].append(event_id)
                current[channel] = (session[0], ts, session[2])
        return sessions


class _Activity:
    """Every activity touch, compactly, to cut the evidence journeys from at the end."""

    __slots__ = ("codes", "event_ids", "first_id", "ids", "kinds", "persons", "times")

    def __init__(self) -> None:
        self.times = array("q")
        self.persons = array("l")
        self.codes = array("l")
        """Index into `kinds` of the touch's (channel, type)."""
        self.first_id = array("l")
        """Start of the touch's identifier indexes in `ids` (one entry past the last touch)."""
        self.ids = array("l")
        self.event_ids: list[str] = []
        self.kinds: dict[tuple[str, str], int] = {}
        self.first_id.append(0)

    def add(
        self, person: int, ts: int, event_id: str, kind: tuple[str, str], ids: list[int]
    ) -> None:
        """Remember one touch."""
        self.times.append(ts)
        self.persons.append(person)
        self.codes.append(self.kinds.setdefault(kind, len(self.kinds)))
        self.ids.extend(ids)
        self.first_id.append(len(self.ids))
        self.event_ids.append(event_id)


@dataclass(slots=True)
class _Counts:
    journeys: int = 0
    converted: int = 0
    multichannel: int = 0
    ropo: int = 0
    showrooming: int = 0
    sessions: int = 0
    online_sessions: int = 0
    online_converting: int = 0
    evidence_journeys: int = 0
    attainable: int = 0
    """True journeys that are evidence journeys too."""
    paths: Counter[str] = field(default_factory=Counter)


class TruthBuilder:
    """Accumulates the truth while the simulation runs."""

    def __init__(self, rules: TruthRules, people: list[Person]) -> None:
        self.rules = rules
        self.people = people
        self._open: dict[int, _Journey] = {}
        self._journey_numbers: Counter[int] = Counter()
        self._index: dict[str, int] = {}
        self._keys: list[str] = []
        self._owner: list[int] = []
        self._sharers: dict[int, list[int]] = {}
        self._edges: set[tuple[int, int]] = set()
        self._component_cache: list[int] | None = None
        self._activity = _Activity()
        self._journey_ids: list[str] = []
        """Serial -> id of every true journey (the activity refers to them by serial)."""
        self._journey_sizes = array("l")
        self._journey_serials = array("l")
        """Per activity touch: the serial of its true journey."""
        self.counts = _Counts()
        self.late_journeys: dict[str, str] = {}
        """event id of a nightly-batch event -> its true journey (until it is sent)."""

    # --- identities ---------------------------------------------------------------------------

    def _intern(self, key: str, person: int) -> int:
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._keys)
            self._keys.append(key)
            self._owner.append(person)
            return index
        owner = self._owner[index]
        if owner != person:
            if owner != SHARED:
                self._sharers[index] = [owner]
                self._owner[index] = SHARED
            if person not in self._sharers[index]:
                self._sharers[index].append(person)
        return index

    # --- journeys -----------------------------------------------------------------------------

    def observe(self, person: int, event_id: str, touch: Touch) -> TruthRecord | None:
        """Record a valid touch of `person` (touches of one person come in event-time order).

        Returns the person's previous journey when this touch closes it.
        """
        indexes = [self._intern(truth_key(*ident), person) for ident in touch.ids]
        first = indexes[0]
        for other in indexes[1:]:
            if other != first:
                self._edges.add((first, other) if first < other else (other, first))
        rules = self.rules
        if touch.channel in rules.identity_only_channels:
            return None
        ts = touch.ts
        journey = self._open.get(person)
        closed = None
        if journey is None or not journey.joins(ts, touch.type, rules):
            if journey is not None:
                closed = self._close(person, journey)
            self._journey_numbers[person] += 1
            number = self._journey_numbers[person]
            journey_id = f"T-{self.people[person].person_id[2:]}-{number:03d}"
            journey = _Journey(journey_id, len(self._journey_ids))
            self._open[person] = journey
            self._journey_ids.append(journey_id)
            self._journey_sizes.append(0)
        journey.add(ts, event_id, touch.channel, touch.type, rules)
        journey.tags.update(touch.tags)
        if touch.upload is not None:
            journey.late += 1
            self.late_journeys[event_id] = journey.journey_id
        self._journey_sizes[journey.serial] += 1
        self._journey_serials.append(journey.serial)
        self._activity.add(person, ts, event_id, (touch.channel, touch.type), indexes)
        return closed

    def _close(self, person: int, journey: _Journey) -> TruthRecord:
        events = journey.events
        path: list[str] = []
        for _, _, channel, _ in events:
            if not path or path[-1] != channel:
                path.append(channel)
        sessions = journey.sessions(self.rules)
        self._count(journey, path, sessions)
        converted = journey.converted
        return TruthRecord(
            "journey",
            {
                "journey": journey.journey_id,
                "person": self.people[person].person_id,
                "events": [event_id for _, event_id, _, _ in events],
                "touches": [f"{channel}/{type_}" for _, _, channel, type_ in events],
                "channels": path,
                "converted": converted is not None,
                "conversion": None
                if converted is None
                else {"event_id": converted[0], "channel": converted[1]},
                "first": iso(events[0][0]),
                "last": iso(events[-1][0]),
                "sessions": sessions,
                "missions": sorted(journey.tags),
                "late": journey.late,
            },
        )

    def _count(self, journey: _Journey, path: list[str], sessions: list[list[str]]) -> None:
        counts = self.counts
        counts.journeys += 1
        counts.converted += journey.converted is not None
        counts.multichannel += len(set(path)) > 1
        counts.paths[" > ".join(path[:6])] += 1
        counts.sessions += len(sessions)
        seen_online = seen_store = False
        for _, _, channel, type_ in journey.events:
            if type_ == "purchase":
                counts.ropo += channel == "pos" and seen_online
                counts.showrooming += channel in _ONLINE and seen_store
            seen_online = seen_online or channel in _ONLINE
            seen_store = seen_store or channel == "pos"
        by_id = {event_id: (channel, type_) for _, event_id, channel, type_ in journey.events}
        for session in sessions:
            channel = by_id[session[0]][0]
            if channel in _ONLINE:
                counts.online_sessions += 1
                counts.online_converting += any(by_id[e][1] == "purchase" for e in session)

    # --- the end ------------------------------------------------------------------------------

    def finish(self) -> Iterator[TruthRecord]:
        """Open journeys, every identifier with its owner and evidence component, the evidence
        journeys, people."""
        for person, journey in sorted(self._open.items()):
            yield self._close(person, journey)
        self._open.clear()
        yield from self._identifiers()
        yield from self._evidence_journeys()
        for someone in self.people:
            yield TruthRecord(
                "person",
                {
                    "person": someone.person_id,
                    "customer_id": someone.customer_id,
                    "loyalty_id": someone.loyalty_id,
                },
            )

    def _identifiers(self) -> Iterator[TruthRecord]:
        components = self._components()
        for index, key in enumerate(self._keys):
            owner = self._owner[index]
            data: dict[str, Any] = {"id": key, "kind": key.split(":", 1)[0]}
            if owner == SHARED:
                persons = [self.people[p].person_id for p in self._sharers[index]]
                data.update(person=None, persons=persons, shared=True, component=None)
            else:
                person_id = self.people[owner].person_id
                data.update(person=person_id, shared=False, component=f"E-{components[index]}")
            yield TruthRecord("identifier", data)

    def _groups(self) -> dict[int, list[int]]:
        """Activity touches (by index) per evidence group, in first-seen order of the groups.

        A touch belongs to the evidence component of its identifiers (they co-occur on it, so
        they share one); a touch with only shared identifiers (the family tablet, logged out)
        to a group of its own per identifier, numbered below zero.
        """
        components, owner = self._components(), self._owner
        activity = self._activity
        ids, first = activity.ids, activity.first_id
        groups: dict[int, list[int]] = {}
        for touch in range(len(activity.times)):
            indexes = ids[first[touch] : first[touch + 1]]
            group = -1 - indexes[0]
            for index in indexes:
                if owner[index] != SHARED:
                    group = components[index]
                    break
            groups.setdefault(group, []).append(touch)
        return groups

    def _evidence_journeys(self) -> Iterator[TruthRecord]:
        """The journeys the rules cut from each evidence group's touches (see the module doc).

        One that is exactly a true journey names it (`same_as`) instead of listing its events.
        """
        activity, rules = self._activity, self.rules
        times, event_ids, codes = activity.times, activity.event_ids, activity.codes
        kinds = list(activity.kinds)
        serials, sizes = self._journey_serials, self._journey_sizes
        counts = self.counts
        number = 0
        for group, touches in self._groups().items():
            touches.sort(key=lambda touch: (times[touch], event_ids[touch]))
            journey: _Journey | None = None
            members: list[int] = []
            for touch in [*touches, -1]:
                if touch >= 0:
                    channel, type_ = kinds[codes[touch]]
                    if journey is not None and journey.joins(times[touch], type_, rules):
                        journey.add(times[touch], event_ids[touch], channel, type_, rules)
                        members.append(touch)
                        continue
                if journey is not None:
                    number += 1
                    serial = serials[members[0]]
                    same = sizes[serial] == len(members) and all(
                        serials[m] == serial for m in members
                    )
                    counts.evidence_journeys += 1
                    counts.attainable += same
                    yield self._evidence_record(
                        f"V-{number:07d}",
                        group,
                        journey,
                        self._journey_ids[serial] if same else None,
                    )
                if touch >= 0:
                    journey = _Journey("")
                    journey.add(times[touch], event_ids[touch], channel, type_, rules)
                    members = [touch]

    def _evidence_record(
        self, journey_id: str, group: int, journey: _Journey, same_as: str | None
    ) -> TruthRecord:
        data: dict[str, Any] = {"journey": journey_id, "same_as": same_as}
        if group >= 0:
            data["group"] = f"E-{group}"
        else:
            data["group"] = f"shared {self._keys[-1 - group]}"
        if same_as is None:
            data["events"] = [event_id for _, event_id, _, _ in journey.events]
            data["sessions"] = journey.sessions(self.rules)
            data["converted"] = journey.converted is not None
        return TruthRecord("evidence_journey", data)

    def _components(self) -> list[int]:
        """Evidence component of every non-shared identifier (its smallest index)."""
        if self._component_cache is not None and len(self._component_cache) == len(self._keys):
            return self._component_cache
        parent = list(range(len(self._keys)))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        owner = self._owner
        for a, b in sorted(self._edges):
            if owner[a] == SHARED or owner[b] == SHARED:
                continue  # a shared device is no evidence that its users are one person
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        self._component_cache = [find(i) for i in range(len(parent))]
        return self._component_cache

    def identity_stats(self) -> dict[str, int]:
        """Identifiers, shared ones, and the true and achievable identifier pairs."""
        components = self._components()
        people: Counter[int] = Counter()
        groups: Counter[int] = Counter()
        shared = 0
        for index, owner in enumerate(self._owner):
            if owner == SHARED:
                shared += 1
                continue
            people[owner] += 1
            groups[components[index]] += 1
        return {
            "identifiers": len(self._keys),
            "shared_identifiers": shared,
            "true_pairs": sum(n * (n - 1) // 2 for n in people.values()),
            "achievable_pairs": sum(n * (n - 1) // 2 for n in groups.values()),
            "evidence_components": len(groups),
        }


# --- reading it back ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Truth:
    """The ground truth as plain mappings (what `omnijourney.evaluation` scores against)."""

    identifiers: dict[str, str]
    """identifier `kind:value` -> person (shared identifiers are not here)."""
    shared: dict[str, tuple[str, ...]]
    """identifier -> the people who used it."""
    components: dict[str, str]
    """identifier -> its evidence component."""
    customer_ids: dict[str, str]
    """person -> their customer_id (people with an account)."""
    journeys: dict[str, tuple[str, ...]]
    """true journey id -> its event ids in event-time order."""
    sessions: dict[str, tuple[str, ...]]
    """true session id (`<journey>/<n>`) -> its event ids."""
    converted: frozenset[str]
    """true journeys that end in a conversion."""
    late: dict[str, dict[str, Any]]
    """nightly-batch event id -> its late record (journey, behind_s, within_lateness...)."""
    duplicates: dict[str, int]
    malformed: int
    meta: dict[str, Any]
    summary: dict[str, Any]
    evidence_journeys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """evidence journey id -> its event ids: the journeys where the evidence allows them."""
    evidence_sessions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    attainable: frozenset[str] = frozenset()
    """True journeys that are evidence journeys too (the others no pipeline can reproduce)."""


def read_truth(lines: Iterable[bytes | str]) -> Truth:
    """Parse a truth file's JSON lines (ConfigurationError naming the line if one is bad)."""
    identifiers: dict[str, str] = {}
    shared: dict[str, tuple[str, ...]] = {}
    components: dict[str, str] = {}
    customer_ids: dict[str, str] = {}
    journeys: dict[str, tuple[str, ...]] = {}
    sessions: dict[str, tuple[str, ...]] = {}
    journey_sessions: dict[str, list[tuple[str, ...]]] = {}
    evidence_journeys: dict[str, tuple[str, ...]] = {}
    evidence_sessions: dict[str, tuple[str, ...]] = {}
    attainable: set[str] = set()
    converted: set[str] = set()
    late: dict[str, dict[str, Any]] = {}
    duplicates: dict[str, int] = {}
    malformed = 0
    meta: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
            kind = record["type"]
            if kind == "identifier":
                if record["shared"]:
                    shared[record["id"]] = tuple(record["persons"])
                else:
                    identifiers[record["id"]] = record["person"]
                    components[record["id"]] = record["component"]
            elif kind == "person":
                if record["customer_id"] is not None:
                    customer_ids[record["person"]] = record["customer_id"]
            elif kind == "journey":
                journey = record["journey"]
                journeys[journey] = tuple(record["events"])
                if record["converted"]:
                    converted.add(journey)
                cut = journey_sessions[journey] = [tuple(s) for s in record["sessions"]]
                for n, events in enumerate(cut, start=1):
                    sessions[f"{journey}/{n}"] = events
            elif kind == "evidence_journey":
                journey, same_as = record["journey"], record["same_as"]
                if same_as is None:
                    evidence_journeys[journey] = tuple(record["events"])
                    cut = [tuple(s) for s in record["sessions"]]
                else:
                    evidence_journeys[journey] = journeys[same_as]
                    cut = journey_sessions[same_as]
                    attainable.add(same_as)
                for n, events in enumerate(cut, start=1):
                    evidence_sessions[f"{journey}/{n}"] = events
            elif kind == "late":
                late[record["event_id"]] = record
            elif kind == "duplicate":
                duplicates[record["event_id"]] = record["copies"]
            elif kind == "malformed":
                malformed = record["count"]
            elif kind == "meta":
                meta = record
            elif kind == "summary":
                summary = record
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"truth file line {number}: not a truth record ({exc})"
            ) from None
    return Truth(
        identifiers,
        shared,
        components,
        customer_ids,
        journeys,
        sessions,
        frozenset(converted),
        late,
        duplicates,
        malformed,
        meta,
        summary,
        evidence_journeys,
        evidence_sessions,
        frozenset(attainable),
    )
