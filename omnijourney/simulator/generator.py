"""The simulation: people live their days, channels send what they saw, the truth is kept.

`simulate(config, hasher)` yields, in the order the retailer's systems send them, every
record for the edge (`Emission`: valid events, the copies flaky clients send again, malformed
ones), interleaved with the ground truth (`TruthRecord`). Nightly-batch tills send a day's
events after midnight, so they arrive behind later events of other channels.

Pure and deterministic: same config and hash key, same items, byte for byte. Memory stays
about one simulated day of events (plus the identifiers and open journeys).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from omnijourney.simulator.behaviour import DAY, Campaign, Life, Touch
from omnijourney.simulator.catalog import make_catalog
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.events import iso, producer_event
from omnijourney.simulator.malformed import MALFORMED_KINDS, malformed_event
from omnijourney.simulator.population import Ids, Person, make_population
from omnijourney.simulator.truth import TruthBuilder, TruthRecord
from schemas.pii import PiiHasher

GENERATOR_VERSION: Final = 1
"""Bumped whenever the same seed would produce different events."""
_FLAKY: Final = frozenset({"web", "app", "pos"})
"""Channels whose clients re-send (duplicates) and sometimes send garbage (malformed)."""
_EMAIL_DAYS: Final = (1, 4)  # Tuesday, Friday
_SMS_DAY: Final = 3  # Thursday


@dataclass(frozen=True, slots=True)
class Emission:
    """One record a producer sends to the edge, at simulated time `send_at`."""

    send_at: int
    channel: str
    kind: str
    """`event`, `duplicate` (the same event again) or `malformed`."""
    event: dict[str, Any] | None
    """The producer event (edge form: clear email/phone), for `event` and `duplicate`."""
    raw: bytes | None
    """The bytes of a `malformed` record."""
    person: int
    occurred: int
    upload: int | None
    """Set for events of a nightly-batch till."""


def simulate(config: SimulationConfig, hasher: PiiHasher) -> Iterator[Emission | TruthRecord]:
    """Emissions in sending order, interleaved with truth records (see the module doc)."""
    return _Simulation(config, hasher).run()


class _Simulation:
    def __init__(self, config: SimulationConfig, hasher: PiiHasher) -> None:
        self.config = config
        rng = self.rng = random.Random(config.seed)  # noqa: S311 - behaviour, not secrets
        self.ids = Ids(rng.getrandbits(64))
        self.catalog = make_catalog(rng, config.customers, config.batch_till_share)
        self.people, self.tablets = make_population(
            rng, self.ids, config.customers, len(self.catalog.stores), hasher
        )
        national = hasher.default_region == "US"  # (202) 555-0143 parses only in region US
        self.life = Life(rng, self.ids, self.catalog, config.currency, national)
        self.truth = TruthBuilder(config.rules, self.people)
        self.heap: list[tuple[int, int, Emission]] = []
        self.seq = itertools.count()
        share = config.malformed_share
        self.malformed_chance = share / (1.0 - share)
        self.watermarks: dict[tuple[int, str], int] = {}
        """(person, channel) -> latest event time sent: lateness is judged within a channel."""
        self.copies: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.late = {"events": 0, "within_lateness": 0}

    def run(self) -> Iterator[Emission | TruthRecord]:
        config = self.config
        yield self._meta()
        start = config.start_ts
        for person in self.people:
            if person.crm_synced:  # the CRM is loaded when the pipeline starts
                self.life.schedule(person, start + self.rng.randrange(1800), "crm", "updated")
        for day in range(config.days):
            day_start = start + day * DAY
            day_end = day_start + DAY
            self._campaigns(day_start)
            for person in self.people:
                for touch in self.life.live(person, day_start, day_end):
                    closed = self._accept(person, touch)
                    if closed is not None:
                        yield closed
            yield from self._send(day_end)
        yield from self._send(None)
        yield from self.truth.finish()
        for event_id, copies in self.copies.items():
            yield TruthRecord("duplicate", {"event_id": event_id, "copies": copies})
        total = sum(self.malformed.values())
        yield TruthRecord("malformed", {"count": total, "by_kind": dict(self.malformed)})
        yield self._summary()

    def _meta(self) -> TruthRecord:
        config = self.config
        rules = config.rules
        return TruthRecord(
            "meta",
            {
                "generator_version": GENERATOR_VERSION,
                "seed": config.seed,
                "customers": config.customers,
                "days": config.days,
                "start": iso(config.start_ts),
                "end": iso(config.end_ts),
                "malformed_share": config.malformed_share,
                "duplicate_share": config.duplicate_share,
                "batch_till_share": config.batch_till_share,
                "identifiers": "kind:value as the pipeline sees them; email_hash and phone_hash "
                "are the edge's keyed hashes (same key as the pipeline)",
                "rules": {
                    "sessions": dict(rules.sessions),
                    "lateness": dict(rules.lateness),
                    "conversion_types": sorted(rules.conversion_types),
                    "follow_up_types": sorted(rules.follow_up_types),
                    "follow_up_window_s": rules.follow_up_window,
                    "inactivity_s": rules.inactivity,
                    "max_duration_s": rules.max_duration,
                    "identity_only_channels": sorted(rules.identity_only_channels),
                },
                "stores": len(self.catalog.stores),
                "batch_tills": sum(t.batch for s in self.catalog.stores for t in s.tills),
                "tills": sum(len(s.tills) for s in self.catalog.stores),
                "shared_tablets": len(self.tablets),
            },
        )

    def _campaigns(self, day_start: int) -> None:
        rng = self.rng
        date = datetime.fromtimestamp(day_start, UTC)
        label = date.strftime("%b%d").lower()
        weekday = date.weekday()
        life = self.life
        if weekday in _EMAIL_DAYS:
            campaign = Campaign(f"CMP-{label}-email", "email", rng.choice(life.catalog.categories))
            send = day_start + 9 * 3600
            for person in self.people:
                if person.email_optin and rng.random() < 0.5:
                    life.schedule(person, send + rng.randrange(3600), "email", campaign)
        if weekday == _SMS_DAY:
            campaign = Campaign(f"CMP-{label}-sms", "sms", rng.choice(life.catalog.categories))
            send = day_start + 12 * 3600
            for person in self.people:
                if person.sms_optin and rng.random() < 0.6:
                    life.schedule(person, send + rng.randrange(900), "sms", campaign)

    def _push(self, emission: Emission) -> None:
        heapq.heappush(self.heap, (emission.send_at, next(self.seq), emission))

    def _accept(self, person: Person, touch: Touch) -> TruthRecord | None:
        rng = self.rng
        event_id = self.ids.uuid()
        event = producer_event(event_id, touch, person.email_optin)
        closed = self.truth.observe(person.index, event_id, touch)
        send_at = touch.ts if touch.upload is None else touch.upload
        index = person.index
        self._push(Emission(send_at, touch.channel, "event", event, None, index, touch.ts,
                            touch.upload))  # fmt: skip
        self.types[f"{touch.channel}/{touch.type}"] += 1
        flaky = touch.channel in _FLAKY
        if flaky and rng.random() < self.config.duplicate_share:
            again = send_at + rng.randint(1, 120)  # a retry after a lost acknowledgement
            self._push(Emission(again, touch.channel, "duplicate", event, None, index, touch.ts,
                                touch.upload))  # fmt: skip
            self.copies[event_id] += 1
        if rng.random() < self.malformed_chance:
            channel = touch.channel if flaky else "web"
            kind, raw = malformed_event(rng, self.ids, channel, send_at, self.ids.uuid())
            self._push(Emission(send_at + rng.randint(0, 60), channel, "malformed", None, raw, -1,
                                send_at, None))  # fmt: skip
            self.malformed[kind] += 1
        return closed

    def _send(self, until: int | None) -> Iterator[Emission | TruthRecord]:
        heap = self.heap
        rules = self.config.rules
        watermarks = self.watermarks
        while heap and (until is None or heap[0][0] < until):
            emission = heapq.heappop(heap)[2]
            self.sent[emission.kind] += 1
            if (
                emission.kind != "malformed"
                and emission.channel not in rules.identity_only_channels
            ):
                key = (emission.person, emission.channel)
                before = watermarks.get(key, emission.occurred)
                if emission.upload is not None and emission.kind == "event":
                    yield self._late(emission, before)
                watermarks[key] = max(before, emission.occurred)
            yield emission

    def _late(self, emission: Emission, watermark: int) -> TruthRecord:
        assert emission.event is not None and emission.upload is not None
        event_id = emission.event["event_id"]
        behind = max(0, watermark - emission.occurred)
        within = behind <= self.config.rules.allowed_lateness(emission.channel)
        self.late["events"] += 1
        self.late["within_lateness"] += within
        return TruthRecord(
            "late",
            {
                "event_id": event_id,
                "person": self.people[emission.person].person_id,
                "channel": emission.channel,
                "event_type": emission.event["type"],
                "occurred_at": iso(emission.occurred),
                "uploaded_at": iso(emission.upload),
                "delay_s": emission.upload - emission.occurred,
                "behind_s": behind,
                "within_lateness": within,
                "journey": self.truth.late_journeys.pop(event_id),
            },
        )

    def _summary(self) -> TruthRecord:
        people = self.people
        counts = self.truth.counts
        stats = self.life.stats
        channels: Counter[str] = Counter()
        for key, n in self.types.items():
            channels[key.split("/", 1)[0]] += n
        online = counts.online_sessions
        return TruthRecord(
            "summary",
            {
                "events": sum(self.types.values()),
                "records_sent": sum(self.sent.values()),
                "duplicate_copies": self.sent["duplicate"],
                "malformed": self.sent["malformed"],
                "malformed_share": round(
                    self.sent["malformed"] / max(1, sum(self.sent.values())), 5
                ),
                "late_events": self.late["events"],
                "late_within_lateness": self.late["within_lateness"],
                "by_channel": dict(sorted(channels.items())),
                "by_type": dict(sorted(self.types.items())),
                "people": len(people),
                "registered": sum(p.customer_id is not None for p in people),
                "loyalty_members": sum(p.loyalty_id is not None for p in people),
                "app_users": sum(p.app_device is not None for p in people),
                "shared_tablets": len(self.tablets),
                "tablet_sessions": stats.tablet_sessions,
                "signups": stats.signups,
                "loyalty_enrolments": stats.enrolments,
                "cookie_resets": stats.cookie_resets,
                "missions": dict(stats.missions),
                "missions_buying": dict(stats.missions_bought),
                "journeys": counts.journeys,
                "evidence_journeys": counts.evidence_journeys,
                "journeys_attainable": counts.attainable,
                "journeys_converted": counts.converted,
                "journeys_multichannel": counts.multichannel,
                "journeys_ropo": counts.ropo,
                "journeys_showrooming": counts.showrooming,
                "sessions": counts.sessions,
                "online_sessions": online,
                "online_sessions_converting": counts.online_converting,
                "online_conversion_rate": round(counts.online_converting / max(1, online), 4),
                "top_paths": dict(counts.paths.most_common(10)),
                **self.truth.identity_stats(),
                "malformed_kinds": list(MALFORMED_KINDS),
            },
        )
