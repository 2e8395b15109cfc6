"""Sessions and journeys of one customer, in event time.

The open (unsealed) touches of a customer are kept sorted by (occurred_at, event_id), and
sessions and journeys are what one greedy left-to-right walk over them makes:

* a journey starts at the first touch, after a conversion (unless the touch is a follow-up
  within the follow-up window: a call about the order), after more than `inactivity` without
  a touch, or when it would span more than `max_duration`;
* inside a journey, a session is one channel's touches, cut by the channel's gap and length.

A touch that sorts after every open touch (the common case) is one more step of that walk.
One that sorts in between (late, within the allowed lateness) or a merge of two customers
re-walks the open touches and emits, as new versions, only what differs: sessions and
journeys whose content changed, with the ids they supersede, and touchpoints whose session,
journey or position changed. Ids are named after first touches, so equal content gets equal
ids whatever the arrival order.

The customer's watermark is the latest event time it saw (or the processing time of a tick).
Lateness is judged per channel: a touch older than the latest event time of its own channel
(or the last tick) minus the channel's lateness is late: it is emitted flagged and changes
nothing. Per channel because each source delivers roughly in its own order, while touches of
other channels may reach a customer through merges in any order (a call absorbed from another
profile must not make an app touch still in flight late). A journey whose end is more than
the largest lateness behind the watermark can never change again: it is emitted once more as
final and evicted, so state stays bounded; event ids are remembered for the dedupe horizon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from streams.core.config import CoreConfig
from streams.core.ids import journey_id, session_id
from streams.core.model import Consent, Touch
from streams.core.records import (
    CONVERTED,
    EXPIRED,
    OPEN,
    SUPERSEDED,
    ChannelSwitch,
    ConsentChange,
    Conversion,
    EnrichedTouchpoint,
    JourneyStatus,
    JourneyUpdate,
    Record,
    SessionUpdate,
)

_NEVER: Final = -(2**62)
_TICK: Final = ""
"""The key of `Timeline.marks` holding the last tick (no channel is named so)."""
_new = tuple.__new__  # builds a record without the named tuple's Python-level __new__
_US: Final = 1_000_000


def _us(seconds: float) -> int:
    return round(seconds * _US)


@dataclass(frozen=True, slots=True)
class TimelineRules:
    """The journey and session rules in integer microseconds, for the hot path."""

    channels: Mapping[str, tuple[int, int, int]]
    """channel -> (session gap, max session, allowed lateness)."""
    default_channel: tuple[int, int, int]
    conversion_types: frozenset[str]
    follow_up_types: frozenset[str]
    identity_only_channels: frozenset[str]
    inactivity: int
    max_duration: int
    follow_up_window: int
    horizon: int
    """The largest allowed lateness: journeys ending further back are sealed."""
    dedupe: int

    @classmethod
    def of(cls, config: CoreConfig) -> TimelineRules:
        """Compile a configuration."""

        def triple(name: str) -> tuple[int, int, int]:
            rule = config.channel(name)
            return (
                _us(rule.session_gap.total_seconds()),
                _us(rule.max_session.total_seconds()),
                _us(rule.allowed_lateness.total_seconds()),
            )

        journeys = config.journeys
        return cls(
            channels={name: triple(name) for name in config.channels},
            default_channel=triple("\0default"),
            conversion_types=journeys.conversion_types,
            follow_up_types=journeys.follow_up_types,
            identity_only_channels=journeys.identity_only_channels,
            inactivity=_us(journeys.inactivity.total_seconds()),
            max_duration=_us(journeys.max_duration.total_seconds()),
            follow_up_window=_us(journeys.follow_up_window.total_seconds()),
            horizon=_us(config.max_lateness.total_seconds()),
            dedupe=_us(config.dedupe_horizon.total_seconds()),
        )


class _Point:
    """An open touch and where the walk placed it."""

    __slots__ = (
        "channel",
        "converts",
        "event_id",
        "follows_up",
        "journey_id",
        "position",
        "previous_channel",
        "session_id",
        "touch",
        "ts",
    )

    def __init__(self, touch: Touch, rules: TimelineRules) -> None:
        self.touch = touch
        self.ts = touch.occurred_us
        self.event_id = touch.event_id
        self.channel = touch.channel
        self.converts = touch.type in rules.conversion_types
        self.follows_up = touch.type in rules.follow_up_types
        self.session_id = ""
        self.journey_id = ""
        self.position = 0
        self.previous_channel: str | None = None

    def after(self, other: _Point) -> bool:
        """Whether this touch sorts after the other by (occurred_at, event_id)."""
        return self.ts > other.ts or (self.ts == other.ts and self.event_id > other.event_id)

    def placement(self, customer_id: str) -> tuple[str, str, str, int, str | None]:
        """What an enriched touchpoint of it says (compared to find what changed)."""
        return (
            customer_id,
            self.session_id,
            self.journey_id,
            self.position,
            self.previous_channel,
        )


class _Session:
    """One channel's run of touches inside a journey."""

    __slots__ = ("channel", "count", "first", "journey_id", "last", "session_id")

    def __init__(self, first: _Point, journey: str) -> None:
        self.session_id = session_id(first.event_id)
        self.channel = first.channel
        self.journey_id = journey
        self.first = first
        self.last = first
        self.count = 1

    def content(self, customer_id: str) -> tuple[str, str, str, str, int]:
        """What a session update says (compared to find what changed)."""
        return (customer_id, self.journey_id, self.first.event_id, self.last.event_id, self.count)

    def record(
        self,
        customer_id: str,
        version: int,
        supersedes: tuple[str, ...] = (),
        superseded_by: str | None = None,
    ) -> SessionUpdate:
        """The session as an output record."""
        first, last = self.first, self.last
        return _new(
            SessionUpdate,
            (
                self.session_id,
                customer_id,
                self.journey_id,
                first.channel,
                first.touch.occurred_at,
                last.touch.occurred_at,
                self.count,
                first.event_id,
                last.event_id,
                version,
                supersedes,
                superseded_by,
            ),
        )


class _Journey:
    """A customer's cross-channel path: its touches, sessions, channel switches, conversion."""

    __slots__ = (
        "conversion",
        "converted_us",
        "end",
        "events",
        "journey_id",
        "path",
        "session_ids",
        "sessions",
        "switches",
    )

    def __init__(self, first: _Point) -> None:
        self.journey_id = journey_id(first.event_id)
        self.events: list[_Point] = []
        self.sessions: list[_Session] = []
        self.session_ids: tuple[str, ...] = ()
        self.path: tuple[str, ...] = ()
        self.switches: tuple[ChannelSwitch, ...] = ()
        self.conversion: Conversion | None = None
        self.converted_us = 0
        self.end = first.ts
        """The latest event time a touch may have and still join the journey."""

    def add(self, point: _Point, gap: int, longest: int, rules: TimelineRules) -> _Session:
        """Append a touch that sorts after all of the journey's touches."""
        channel = point.channel
        session = None
        for candidate in reversed(self.sessions):  # the channel's latest session, if any
            if candidate.channel == channel:
                session = candidate
                break
        if (
            session is None
            or point.ts - session.last.ts > gap
            or point.ts - session.first.ts > longest
        ):
            session = _Session(point, self.journey_id)
            self.sessions.append(session)
            self.session_ids = (*self.session_ids, session.session_id)
        else:
            session.last = point
            session.count += 1
        events = self.events
        if events:
            previous = events[-1].channel
            point.previous_channel = previous
            if previous != channel:
                self.path = (*self.path, channel)
                at = point.touch.occurred_at
                self.switches = (
                    *self.switches,
                    ChannelSwitch(previous, channel, at, point.event_id),
                )
        else:
            point.previous_channel = None
            self.path = (channel,)
        events.append(point)
        point.position = len(events)
        point.session_id = session.session_id
        point.journey_id = self.journey_id
        if self.conversion is None:
            if point.converts:
                self.converted_us = point.ts
                self.end = point.ts + rules.follow_up_window
                touch = point.touch
                self.conversion = Conversion(
                    touch.event_id,
                    touch.type,
                    touch.channel,
                    touch.occurred_at,
                    touch.value,
                    touch.currency,
                )
            else:
                idle = point.ts + rules.inactivity
                longest_journey = events[0].ts + rules.max_duration
                self.end = idle if idle < longest_journey else longest_journey
        return session

    def content(self, customer_id: str, status: str) -> tuple[str, str, str, str, int]:
        """What a journey update says (its touches are the contiguous run first..last)."""
        return (
            customer_id,
            status,
            self.events[0].event_id,
            self.events[-1].event_id,
            len(self.events),
        )

    def record(
        self,
        customer_id: str,
        status: JourneyStatus,
        version: int,
        supersedes: tuple[str, ...] = (),
        superseded_by: str | None = None,
        *,
        consent: Consent,
        final: bool = False,
    ) -> JourneyUpdate:
        """The journey as an output record (with the customer's latest consent)."""
        first, last = self.events[0], self.events[-1]
        return _new(
            JourneyUpdate,
            (
                self.journey_id,
                customer_id,
                status,
                final,
                first.touch.occurred_at,
                last.touch.occurred_at,
                first.channel,
                last.channel,
                first.event_id,
                last.event_id,
                len(self.events),
                self.session_ids,
                self.path,
                self.switches,
                self.conversion,
                version,
                supersedes,
                superseded_by,
                consent,
            ),
        )


class _Before:
    """What was emitted before a re-walk (the baseline the new versions are diffed against)."""

    __slots__ = ("journeys", "sessions", "touches")

    def __init__(self) -> None:
        self.journeys: dict[str, tuple[tuple[str, str, str, str, int], _Journey]] = {}
        self.sessions: dict[str, tuple[tuple[str, str, str, str, int], _Session]] = {}
        self.touches: dict[str, tuple[str, str, str, int, str | None]] = {}


class Timeline:
    """Open sessions and journeys of one customer, with its watermark and dedupe memory."""

    __slots__ = (
        "consent",
        "consent_event",
        "consent_us",
        "customer_id",
        "journeys",
        "marks",
        "oldest",
        "pruned_at",
        "revision",
        "rules",
        "sealed",
        "seen",
        "watermark",
    )

    def __init__(self, customer_id: str, rules: TimelineRules) -> None:
        self.customer_id = customer_id
        self.rules = rules
        self.watermark = _NEVER
        self.marks: dict[str, int] = {}
        """channel -> latest event time placed (and `_TICK` -> last tick): judges lateness."""
        self.revision = 0
        """Version of the records of the last change (grows, also across merges)."""
        self.journeys: list[_Journey] = []
        self.seen: dict[str, int] = {}
        """event id -> occurred_at (µs) of every touch within the dedupe horizon."""
        self.sealed: tuple[tuple[int, int, str], ...] = ()
        """(first, last, journey id) of sealed journeys, to attach late touches to (a tuple
        of atoms, which the garbage collector stops tracking)."""
        self.pruned_at = _NEVER
        self.oldest = -_NEVER
        """The smallest event time in `seen` of a touch no longer open (none: +infinity), so
        pruning is skipped until something can expire."""
        self.consent = Consent()
        """The customer's latest known consent: that of the touch latest by (occurred_at,
        event_id), whatever the arrival order (the defaults until a touch says otherwise)."""
        self.consent_us = _NEVER
        self.consent_event = ""

    # --- the steps ---------------------------------------------------------------------------

    def knows(self, event_id: str) -> bool:
        """Whether the touch was seen already (a duplicate changes nothing)."""
        return event_id in self.seen

    def add(self, touch: Touch) -> list[Record]:
        """Place a new touch (the caller checked `knows`) and return what changed."""
        previous = self.consent
        if not self._learn(touch.occurred_us, touch.event_id, touch.consent):
            return self._add(touch)
        records = self._add(touch)
        self._consented(previous, records)
        return records

    def notice(self, consent: Consent, at_us: int, event_id: str) -> list[Record]:
        """A consent without a touch to place (one without analytics consent): what changed."""
        previous = self.consent
        if not self._learn(at_us, event_id, consent):
            return []
        self.revision += 1
        records: list[Record] = []
        self._consented(previous, records)
        return records

    def _learn(self, at_us: int, event_id: str, consent: Consent) -> bool:
        """Take the consent if it is the latest by event time; whether the consent changed."""
        if at_us < self.consent_us or (at_us == self.consent_us and event_id <= self.consent_event):
            return False
        self.consent_us, self.consent_event = at_us, event_id
        if consent == self.consent:
            return False
        self.consent = consent
        return True

    def _consented(self, previous: Consent, records: list[Record]) -> None:
        """The consent changed: every open journey is re-published with it, and the change."""
        done = {
            record.journey_id
            for record in records
            if type(record) is JourneyUpdate and record.superseded_by is None
        }
        customer, consent, version = self.customer_id, self.consent, self.revision
        for journey in self.journeys:
            if journey.journey_id not in done:
                status = _status(journey, self.watermark)
                records.append(journey.record(customer, status, version, consent=consent))
        change = ConsentChange(customer, consent, previous, self.consent_event, version)
        records.append(change)

    def _add(self, touch: Touch) -> list[Record]:
        rules = self.rules
        ts = touch.occurred_us
        self.seen[touch.event_id] = ts
        self.revision += 1
        channel = touch.channel
        if channel in rules.identity_only_channels:
            self.oldest = min(self.oldest, ts)
            return [self._touchpoint(touch, None, False)]
        gap, longest, lateness = rules.channels.get(channel) or rules.default_channel
        marks = self.marks
        mark = marks.get(channel, _NEVER)
        if ts < max(mark, marks.get(_TICK, _NEVER)) - lateness:
            self.oldest = min(self.oldest, ts)
            return [self._touchpoint(touch, self._attach(ts), True)]
        if ts > mark:
            marks[channel] = ts
        before = self.watermark
        if ts > before:
            self.watermark = ts
        point = _Point(touch, rules)
        journeys = self.journeys
        if journeys:
            last = journeys[-1].events[-1]
            if ts > last.ts or (ts == last.ts and point.event_id > last.event_id):
                records = self._append(point, gap, longest, before)
            else:
                start = self._affected((ts, point.event_id))
                records = self._rewalk(start, [point], self._capture(before, start))
        else:
            records = self._append(point, gap, longest, before)
        watermark = self.watermark
        if self.journeys[0].end < watermark - rules.horizon:
            self._seal(records)
        if self.oldest < watermark - rules.dedupe:
            self._prune()
        return records

    def advance(self, now_us: int) -> list[Record]:
        """Processing time reached `now_us`: expire idle journeys, seal and evict old ones."""
        before = self.watermark
        if now_us <= before:
            return []
        self.watermark = self.marks[_TICK] = now_us
        self.revision += 1
        records: list[Record] = []
        if self.journeys:
            last = self.journeys[-1]
            status = _status(last, now_us)
            if status != _status(last, before):
                records.append(
                    last.record(self.customer_id, status, self.revision, consent=self.consent)
                )
        self._seal(records)
        if self.oldest < now_us - self.rules.dedupe:
            self._prune()
        return records

    def absorb(self, other: Timeline) -> list[Record]:
        """Take over a merged customer's timeline: open journeys of both re-walked together."""
        theirs = [point for point in other._points() if point.event_id not in self.seen]
        start = len(self.journeys)
        if theirs:
            start = self._affected(min(_order(point) for point in theirs))
        if other.watermark > self.watermark and self.journeys:
            start = min(start, len(self.journeys) - 1)  # the last one's status may change
        baseline = self._capture(self.watermark, start)
        gone = other._capture(other.watermark, 0)
        baseline.journeys.update(gone.journeys)
        baseline.sessions.update(gone.sessions)
        baseline.touches.update(gone.touches)
        previous = self.consent
        learned = self._learn(other.consent_us, other.consent_event, other.consent)
        for event_id, ts in other.seen.items():
            self.seen.setdefault(event_id, ts)
        self.oldest = min(self.oldest, other.oldest)
        self.sealed = tuple(sorted({*self.sealed, *other.sealed}))
        self.watermark = max(self.watermark, other.watermark)
        for channel, mark in other.marks.items():
            if mark > self.marks.get(channel, _NEVER):
                self.marks[channel] = mark
        self.revision = max(self.revision, other.revision) + 1
        records = self._rewalk(start, theirs, baseline)
        if learned:
            self._consented(previous, records)
        if self.journeys:
            self._seal(records)
        if self.oldest < self.watermark - self.rules.dedupe:
            self._prune()
        return records

    # --- the walk ----------------------------------------------------------------------------

    def _place(self, point: _Point) -> _Session:
        """One step of the walk: extend the last journey or start a new one."""
        rules = self.rules
        journeys = self.journeys
        journey = journeys[-1] if journeys else None
        if journey is None or not _joins(journey, point):
            journey = _Journey(point)
            journeys.append(journey)
        gap, longest, _ = rules.channels.get(point.channel) or rules.default_channel
        return journey.add(point, gap, longest, rules)

    def _append(self, point: _Point, gap: int, longest: int, before: int) -> list[Record]:
        """The common case: the touch sorts after every open touch."""
        journeys = self.journeys
        previous = journeys[-1] if journeys else None
        if previous is not None and _joins(previous, point):
            journey = previous
        else:
            journey = _Journey(point)
            journeys.append(journey)
        session = journey.add(point, gap, longest, self.rules)
        customer, version, watermark = self.customer_id, self.revision, self.watermark
        records: list[Record] = [
            _new(
                EnrichedTouchpoint,
                (
                    point.touch,
                    customer,
                    point.session_id,
                    point.journey_id,
                    point.position,
                    point.previous_channel,
                    False,
                    version,
                ),
            ),
            session.record(customer, version),
            journey.record(customer, _status(journey, watermark), version, consent=self.consent),
        ]
        if previous is not None and previous is not journey:
            status = _status(previous, watermark)
            if status != _status(previous, before):
                records.append(previous.record(customer, status, version, consent=self.consent))
        return records

    def _points(self) -> list[_Point]:
        return [point for journey in self.journeys for point in journey.events]

    def _affected(self, key: tuple[int, str]) -> int:
        """Index of the first open journey a touch sorting at `key` can change: the last one
        starting before it (it may join that one; the walk before it stays as it is)."""
        journeys = self.journeys
        for index in range(len(journeys) - 1, 0, -1):
            if _order(journeys[index].events[0]) < key:
                return index
        return 0

    def _capture(self, watermark: int, start: int) -> _Before:
        """Open journeys from `start` on, their sessions and placements, as emitted."""
        before = _Before()
        customer = self.customer_id
        for journey in self.journeys[start:]:
            status = _status(journey, watermark)
            before.journeys[journey.journey_id] = (journey.content(customer, status), journey)
            for session in journey.sessions:
                before.sessions[session.session_id] = (session.content(customer), session)
            for point in journey.events:
                before.touches[point.event_id] = point.placement(customer)
        return before

    def _rewalk(self, start: int, extra: list[_Point], before: _Before) -> list[Record]:
        """Re-walk the open journeys from `start` on with extra touches; emit what differs
        from `before` (the journeys before `start` cannot change)."""
        journeys = self.journeys
        points = [point for journey in journeys[start:] for point in journey.events]
        points.extend(extra)
        points.sort(key=_order)
        del journeys[start:]
        for point in points:
            self._place(point)
        rewalked = journeys[start:]
        customer, version, consent = self.customer_id, self.revision, self.consent
        records: list[Record] = []
        for point in points:
            if before.touches.get(point.event_id) != point.placement(customer):
                records.append(self._touchpoint(point.touch, None, False, point))
        # A vanished session or journey is superseded by the one that now holds its first touch.
        session_heirs: dict[str, list[str]] = {}
        tombstones: list[Record] = []
        sessions = {s.session_id for journey in rewalked for s in journey.sessions}
        for old_id, (_, old) in before.sessions.items():
            if old_id not in sessions:
                heir = old.first.session_id
                session_heirs.setdefault(heir, []).append(old_id)
                tombstones.append(old.record(customer, version, superseded_by=heir))
        journey_heirs: dict[str, list[str]] = {}
        journey_ids = {journey.journey_id for journey in rewalked}
        for old_id, (_, old_journey) in before.journeys.items():
            if old_id not in journey_ids:
                heir = old_journey.events[0].journey_id
                journey_heirs.setdefault(heir, []).append(old_id)
                tombstones.append(
                    old_journey.record(
                        customer, SUPERSEDED, version, superseded_by=heir, consent=consent
                    )
                )
        for journey in rewalked:
            for session in journey.sessions:
                sid = session.session_id
                seen = before.sessions.get(sid)
                if seen is None or seen[0] != session.content(customer):
                    heirs = tuple(session_heirs.get(sid, ()))
                    records.append(session.record(customer, version, heirs))
        for journey in rewalked:
            jid = journey.journey_id
            status = _status(journey, self.watermark)
            seen_journey = before.journeys.get(jid)
            if seen_journey is None or seen_journey[0] != journey.content(customer, status):
                heirs = tuple(journey_heirs.get(jid, ()))
                records.append(journey.record(customer, status, version, heirs, consent=consent))
        records.extend(tombstones)
        return records

    # --- late touches, sealing, pruning ------------------------------------------------------

    def _touchpoint(
        self, touch: Touch, journey: str | None, late: bool, point: _Point | None = None
    ) -> EnrichedTouchpoint:
        if point is None:
            return EnrichedTouchpoint(
                touch, self.customer_id, None, journey, None, None, late, self.revision
            )
        return EnrichedTouchpoint(
            touch,
            self.customer_id,
            point.session_id,
            point.journey_id,
            point.position,
            point.previous_channel,
            late,
            self.revision,
        )

    def _attach(self, ts: int) -> str | None:
        """The journey a late touch falls into by time, as best known (None if evicted)."""
        for journey in reversed(self.journeys):
            if journey.events[0].ts <= ts <= journey.events[-1].ts:
                return journey.journey_id
        for first, last, sealed_id in reversed(self.sealed):
            if first <= ts <= last:
                return sealed_id
        return None

    def _seal(self, records: list[Record]) -> None:
        """Emit as final and evict the journeys no touch within the lateness can change."""
        horizon = self.watermark - self.rules.horizon
        journeys = self.journeys
        while journeys and journeys[0].end < horizon:
            journey = journeys.pop(0)
            jid = journey.journey_id
            customer, status = self.customer_id, _status(journey, self.watermark)
            for index in range(len(records) - 1, -1, -1):  # this step's update, if any
                record = records[index]
                if (
                    type(record) is JourneyUpdate
                    and record.journey_id == jid
                    and record.superseded_by is None
                ):
                    supersedes = record.supersedes
                    records[index] = journey.record(
                        customer,
                        status,
                        self.revision,
                        supersedes,
                        final=True,
                        consent=self.consent,
                    )
                    break
            else:
                records.append(
                    journey.record(
                        customer, status, self.revision, final=True, consent=self.consent
                    )
                )
            self.sealed = (*self.sealed, (journey.events[0].ts, journey.events[-1].ts, jid))
            self.oldest = min(self.oldest, journey.events[0].ts)  # its ids are no longer open

    def _prune(self) -> None:
        """Forget event ids and sealed spans beyond the dedupe horizon (amortised)."""
        dedupe = self.rules.dedupe
        if self.watermark - self.pruned_at < dedupe // 8:
            return  # at most eight times per horizon, however old the open touches are
        self.pruned_at = self.watermark
        cutoff = self.watermark - dedupe
        opened = {point.event_id for point in self._points()}
        self.seen = {e: ts for e, ts in self.seen.items() if ts >= cutoff or e in opened}
        self.oldest = min((ts for e, ts in self.seen.items() if e not in opened), default=-_NEVER)
        self.sealed = tuple(span for span in self.sealed if span[1] >= cutoff)

    # --- inspection and serialization --------------------------------------------------------

    def open_journeys(self) -> list[JourneyUpdate]:
        """Current state of the open journeys (for views and tests)."""
        customer, consent = self.customer_id, self.consent
        return [
            journey.record(
                customer, _status(journey, self.watermark), self.revision, consent=consent
            )
            for journey in self.journeys
        ]

    def open_touches(self) -> int:
        """How many touches are held in state."""
        return sum(len(journey.events) for journey in self.journeys)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the open touches; sessions and journeys are re-walked on load."""
        return {
            "customer_id": self.customer_id,
            "watermark": self.watermark,
            "marks": dict(self.marks),
            "revision": self.revision,
            "pruned_at": self.pruned_at,
            "touches": [point.touch.to_dict() for point in self._points()],
            "seen": dict(self.seen),
            "sealed": [list(span) for span in self.sealed],
            "consent": {
                **self.consent.to_dict(),
                "at_us": self.consent_us,
                "event_id": self.consent_event,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], rules: TimelineRules) -> Timeline:
        """Inverse of to_dict."""
        timeline = cls(str(data["customer_id"]), rules)
        timeline.watermark = int(data["watermark"])
        timeline.marks = {str(k): int(v) for k, v in data.get("marks", {}).items()}
        timeline.revision = int(data["revision"])
        timeline.pruned_at = int(data["pruned_at"])
        timeline.seen = {str(k): int(v) for k, v in data["seen"].items()}
        timeline.oldest = min(timeline.seen.values(), default=-_NEVER)
        timeline.sealed = tuple((int(a), int(b), str(c)) for a, b, c in data["sealed"])
        consent = data.get("consent")  # absent in states stored before decision 0016
        if consent is not None:
            timeline.consent = Consent.from_dict(consent)
            timeline.consent_us = int(consent["at_us"])
            timeline.consent_event = str(consent["event_id"])
        for item in data["touches"]:
            timeline._place(_Point(Touch.from_dict(item), rules))
        return timeline


def _order(point: _Point) -> tuple[int, str]:
    return (point.ts, point.event_id)


def _joins(journey: _Journey, point: _Point) -> bool:
    """Whether a touch after the journey's last one still belongs to it."""
    if journey.conversion is not None and not point.follows_up:
        return False
    return point.ts <= journey.end


def _status(journey: _Journey, watermark: int) -> JourneyStatus:
    if journey.conversion is not None:
        return CONVERTED
    return EXPIRED if watermark > journey.end else OPEN
