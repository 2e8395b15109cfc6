"""Shared pieces of the failure tests (a worker or a broker killed mid-stream).

An order-independent stream of people, waiting until a consumer group caught up, and the
final view of touchpoints and journeys that the live run must share with the pure core.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from omnijourney.local.admin import end_offsets, stop_consumer
from omnijourney.settings import Settings
from schemas.emitter import Emitter
from schemas.examples import examples
from schemas.topics import Record
from schemas.touchpoint import Touchpoint
from streams.convert import core_config, to_touch
from streams.core import Stitcher
from streams.core.simulation import Simulator
from tests.pipeline_support import read_from

PATIENCE_HOURS = '{"*": 48}'
PATIENCE = {"OMNIJOURNEY_WORKER__ALLOWED_LATENESS_H": PATIENCE_HOURS}
"""Every channel may be two days late and the stream spans one day: no touch is ever late, so
the core's result does not depend on the arrival order, and any undisturbed run ends the same
(the core's hypothesis property `test_merges_combine_open_sessions_and_journeys_in_event_time`).
With the retail lateness, which touches end up late depends on how far a kill delays some
partitions behind others, and that is the rule working, not a fault of the takeover."""

_TEMPLATES = {(e["channel"], e["type"]): e for e in examples()}
_PRIMARY = {"web": "anonymous_id", "app": "device_id", "pos": "loyalty_id", "email": "customer_id"}
_KINDS = [
    ("web", "page_view"), ("web", "product_view"), ("web", "add_to_cart"), ("web", "login"),
    ("web", "purchase"), ("app", "screen_view"), ("app", "product_view"), ("app", "login"),
    ("app", "purchase"), ("pos", "store_visit"), ("pos", "loyalty_scan"), ("pos", "return"),
    ("email", "open"), ("email", "click"),
]  # fmt: skip
CHANNELS = tuple(sorted(_PRIMARY))
"""The channels of the people's events."""


def people_events(seed: int, people: int = 250) -> list[dict[str, Any]]:
    """Events of people over a day, in event time order: each has a cookie, an app device, a
    card and a customer id, links them by logging in or showing the card, and shares nothing."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    events: list[dict[str, Any]] = []
    for person in range(people):
        ids = {
            "anonymous_id": f"ajs-{seed}-{person}",
            "device_id": f"dev-{seed}-{person}",
            "loyalty_id": f"LOY-{seed}-{person}",
            "customer_id": f"CUST-{seed}-{person}",
        }
        for _ in range(rng.randint(3, 12)):
            channel, type_ = rng.choice(_KINDS)
            kinds = {_PRIMARY[channel]}
            if type_ in ("login", "purchase") or rng.random() < 0.2:
                kinds.add("customer_id")
            at = start + timedelta(seconds=rng.randint(0, 86_000))
            event = {
                **_TEMPLATES[(channel, type_)],
                "event_id": f"{seed}-{uuid.UUID(int=rng.getrandbits(128))}",
                "identities": [{"kind": kind, "value": ids[kind]} for kind in sorted(kinds)],
                "occurred_at": at.isoformat(),
            }
            event.pop("sent_at", None)  # keep occurred_at exactly as generated
            events.append(event)
    events.sort(key=lambda event: event["occurred_at"])
    return events


def producer_records(emitter: Emitter, events: list[dict[str, Any]]) -> list[Record]:
    """(topic, key, value) of the events as a producer writing to Kafka directly sends them."""
    return [emitter.record(event, now=datetime.now(UTC)) for event in events]


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """{topic-partition: records} of the topics' committed data the group has not committed.

    Records, not offsets: a transactional producer (the collector) ends each transaction with
    a commit marker, an offset no consumer ever processes, so a caught-up group's committed
    offset may stay one below the partition's end.
    """
    ends = await end_offsets(bootstrap, topics, isolation="read_committed")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        starts = {tp: await consumer.committed(tp) or 0 for tp in ends}
    finally:
        await stop_consumer(consumer)
    behind = {tp: start for tp, start in starts.items() if start < ends[tp]}
    unread = await read_from(bootstrap, behind) if behind else []
    counts: dict[str, int] = defaultdict(int)
    for record in unread:
        counts[f"{record.topic}-{record.partition}"] += 1
    return dict(sorted(counts.items()))


def wait_caught_up(bootstrap: str, group: str, topics: list[str], timeout: float) -> None:
    """Block until the group committed everything of the topics, three looks in a row."""
    deadline = time.monotonic() + timeout
    quiet = 0
    behind: dict[str, int] = {}
    while time.monotonic() < deadline:
        behind = asyncio.run(group_lag(bootstrap, group, topics))
        quiet = 0 if behind else quiet + 1
        if quiet >= 3:  # nothing left and nothing new for three looks
            return
        time.sleep(1)
    raise AssertionError(f"group {group} did not catch up within {timeout} s: behind {behind}")


_ENTITY = {
    "enriched_touchpoint": "event_id",
    "session_update": "session_id",
    "journey_update": "journey_id",
}
"""The field naming what a versioned record is about."""


def identity(topic: str, data: dict[str, Any]) -> tuple[Any, ...]:
    """What a record is about: its entity and version, or (unversioned) all of it."""
    kind = data["record_type"]
    field = _ENTITY.get(kind)
    if field is not None:
        return (topic, kind, data[field], data["version"])
    return (topic, kind, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))


def repeats_differing(public: list[tuple[bytes | None, str, bytes]]) -> list[tuple[Any, ...]]:
    """(key, topic, value) records whose key and version came with different bytes."""
    by_identity: dict[tuple[Any, ...], set[bytes]] = defaultdict(set)
    for key, topic, value in public:
        by_identity[(key, *identity(topic, orjson.loads(value)))].add(value)
    return [found for found, values in by_identity.items() if len(values) > 1]


def customer_names(touch_customers: dict[str, str]) -> dict[str, str]:
    """{customer id: its earliest event id} from {event id: customer id}.

    Customer ids are minted from whichever touch arrived first, so they name a customer by
    arrival order; the customer's earliest event id names it whatever the order.
    """
    names: dict[str, str] = {}
    for event_id, customer in touch_customers.items():
        names[customer] = min(names.get(customer, event_id), event_id)
    return names


def final_view(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Latest version of every touchpoint and journey, customers resolved through merges."""
    survivor = {r["alias_id"]: r["survivor_id"] for r in records if r["record_type"] == "merge"}

    def resolve(customer: str) -> str:
        while customer in survivor:
            customer = survivor[customer]
        return customer

    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        kind = record["record_type"]
        if kind == "enriched_touchpoint":
            key = ("touch", record["event_id"])
        elif kind == "journey_update":
            key = ("journey", record["journey_id"])
        else:
            continue
        if key not in latest or record["version"] > latest[key]["version"]:
            latest[key] = record
    view = {}
    for key, record in latest.items():
        if record.get("status") == "superseded":
            continue
        data = {k: v for k, v in record.items() if k not in ("version", "supersedes")}
        data["customer_id"] = resolve(str(data["customer_id"]))
        view[key] = data
    touches = {key[1]: d["customer_id"] for key, d in view.items() if key[0] == "touch"}
    names = customer_names(touches)
    for data in view.values():
        data["customer_id"] = names.get(data["customer_id"], data["customer_id"])
    return view


def core_final_view(valid: list[Touchpoint]) -> dict[tuple[str, str], dict[str, Any]]:
    """The final view of the undisturbed pure core over the validated touchpoints (as JSON)."""
    patient = Settings(worker={"allowed_lateness_h": orjson.loads(PATIENCE_HOURS)})
    sim = Simulator(Stitcher(core_config(patient)), partitions=3, seed=0)
    sim.submit(to_touch(touchpoint) for touchpoint in valid)
    baseline = final_view([record.to_dict() for record in sim.run()])
    return {key: orjson.loads(orjson.dumps(data)) for key, data in baseline.items()}


def differences(
    final: dict[tuple[str, str], dict[str, Any]], baseline: dict[tuple[str, str], dict[str, Any]]
) -> list[tuple[Any, Any]]:
    """(live, core) of every entry that differs, including entries only one side has."""
    keys = sorted(set(final) | set(baseline))
    return [(final.get(k), baseline.get(k)) for k in keys if final.get(k) != baseline.get(k)]


def miscounted_journeys(final: dict[tuple[str, str], dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """{journey id: (touch_count, placed touches)} where the two differ (a touch counted twice)."""
    placed: dict[str, int] = defaultdict(int)
    for (kind, _), data in final.items():
        if kind == "touch" and data["journey_id"] and not data["late"]:
            placed[data["journey_id"]] += 1
    journeys = {k[1]: d for k, d in final.items() if k[0] == "journey"}
    return {
        journey: (data["touch_count"], placed.get(journey, 0))
        for journey, data in journeys.items()
        if data["touch_count"] != placed.get(journey, 0)
    } | {j: (0, n) for j, n in placed.items() if j not in journeys}
