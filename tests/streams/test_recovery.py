"""Two workers share the partitions; one is SIGKILLed mid-stream; the other takes over.

The final journeys must equal an undisturbed run's: the pure core over the same validated
touchpoints (its final view does not depend on the interleaving; the core tests prove it).
No touchpoint may count twice in a journey, and every repeated record on the public topics
must be a byte-identical repeat of the same key and version.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from omnijourney.settings import Settings
from schemas.contracts import PUBLIC_TOPICS
from schemas.emitter import Emitter
from schemas.examples import examples
from schemas.pii import PiiHasher
from schemas.validation import decode_touchpoint
from streams.convert import core_config, to_touch
from streams.core import Stitcher
from streams.core.simulation import Simulator
from streams.topics import VALID_TOPIC, raw_topic_names
from tests.pipeline_support import PII_KEY, Worker, commit_ends, end_offsets, read_from

# Marked `recovery` so that it can be run alone: `pytest -m recovery` (decision 0018).
pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.recovery]

HASHER = PiiHasher(PII_KEY.encode(), "US")


PATIENCE_HOURS = '{"*": 48}'
PATIENCE = {"OMNIJOURNEY_WORKER__ALLOWED_LATENESS_H": PATIENCE_HOURS}
"""Every channel may be two days late and the stream spans one day: no touch is ever late, so
the core's result does not depend on the arrival order, and any undisturbed run ends the same
(the core's hypothesis property `test_merges_combine_open_sessions_and_journeys_in_event_time`).
With the retail lateness, which touches end up late depends on how far the kill delays some
partitions behind others, and that is the rule working, not a fault of the takeover."""

_TEMPLATES = {(e["channel"], e["type"]): e for e in examples()}
_PRIMARY = {"web": "anonymous_id", "app": "device_id", "pos": "loyalty_id", "email": "customer_id"}
_KINDS = [
    ("web", "page_view"), ("web", "product_view"), ("web", "add_to_cart"), ("web", "login"),
    ("web", "purchase"), ("app", "screen_view"), ("app", "product_view"), ("app", "login"),
    ("app", "purchase"), ("pos", "store_visit"), ("pos", "loyalty_scan"), ("pos", "return"),
    ("email", "open"), ("email", "click"),
]  # fmt: skip


def _records(seed: int) -> tuple[list[tuple[str, bytes, bytes]], set[str]]:
    """Producer records of 250 people over a day: each has a cookie, an app device, a card
    and a customer id, links them by logging in or showing the card, and shares nothing."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    emitter = Emitter(HASHER)
    events: list[dict[str, Any]] = []
    for person in range(250):
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
            events.append({
                **_TEMPLATES[(channel, type_)],
                "event_id": f"{seed}-{uuid.UUID(int=rng.getrandbits(128))}",
                "identities": [{"kind": kind, "value": ids[kind]} for kind in sorted(kinds)],
                "occurred_at": at.isoformat(),
            })  # fmt: skip
    events.sort(key=lambda event: event["occurred_at"])
    out = []
    for event in events:
        event.pop("sent_at", None)  # keep occurred_at exactly as generated
        out.append(tuple(emitter.record(event, now=datetime.now(UTC))))
    return out, {event["event_id"] for event in events}


async def _produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _lag(bootstrap: str, group: str, topics: list[str]) -> int:
    ends = await end_offsets(bootstrap, topics, isolation="read_committed")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        behind = 0
        for tp, end in ends.items():
            committed = await consumer.committed(tp) or 0
            behind += max(0, end - committed)
        return behind
    finally:
        await consumer.stop()


def _wait_caught_up(bootstrap: str, group: str, topics: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if asyncio.run(_lag(bootstrap, group, topics)) == 0 else 0
        if quiet >= 3:  # nothing left and nothing new for three looks
            return
        time.sleep(1)
    raise AssertionError(f"group {group} did not catch up within {timeout} s")


def _outputs(bootstrap: str, starts: dict[TopicPartition, int], run: str) -> list[Any]:
    consumed = asyncio.run(read_from(bootstrap, starts))
    return [c for c in consumed if f'"{run}-'.encode() in c.value]


_ENTITY = {
    "enriched_touchpoint": "event_id",
    "session_update": "session_id",
    "journey_update": "journey_id",
}
"""The field naming what a versioned record is about."""


def _identity(topic: str, data: dict[str, Any]) -> tuple[Any, ...]:
    """What a record is about: its entity and version, or (unversioned) all of it."""
    kind = data["record_type"]
    field = _ENTITY.get(kind)
    if field is not None:
        return (topic, kind, data[field], data["version"])
    return (topic, kind, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))


def _final(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
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
    # Customer ids are minted from whichever touch arrived first, so they name a customer by
    # arrival order; the customer's earliest event id names it whatever the order.
    names: dict[str, str] = {}
    for (kind, event_id), data in view.items():
        if kind == "touch":
            customer = data["customer_id"]
            names[customer] = min(names.get(customer, event_id), event_id)
    for data in view.values():
        data["customer_id"] = names.get(data["customer_id"], data["customer_id"])
    return view


def test_a_sigkilled_worker_hands_over_without_loss_or_double_counting(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    run = f"{uuid.uuid4().int % 10**6}"
    records, events = _records(int(run))
    group = f"omnijourney-kill-{run}"
    asyncio.run(commit_ends(kafka_bootstrap, group, [*raw_topic_names(), VALID_TOPIC]))
    starts = asyncio.run(end_offsets(kafka_bootstrap, [*PUBLIC_TOPICS, VALID_TOPIC]))
    internal = [f"{group}.identifiers", f"{group}.customers"]
    settings = {
        "OMNIJOURNEY_WORKER__COMMIT_INTERVAL_S": "1.0",
        "OMNIJOURNEY_WORKER__LOG_LEVEL": "info",  # the logs say where a takeover stalls
        **PATIENCE,
    }
    first = Worker(kafka_bootstrap, tmp_path / "first", group_id=group, **settings)
    second = Worker(kafka_bootstrap, tmp_path / "second", group_id=group, **settings)
    try:
        first.wait_healthy()
        second.wait_healthy()
        asyncio.run(_produce(kafka_bootstrap, records))
        # Kill the first worker once some, not all, of the stream has come out.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = {
                orjson.loads(c.value)["event_id"]
                for c in _outputs(kafka_bootstrap, starts, run)
                if c.topic == "journeys.touchpoints"
            }
            if len(seen) >= len(events) // 4:
                break
            time.sleep(0.2)
        assert len(seen) < len(events), "the stream ended before the kill: make it longer"
        first.kill()
        topics = [*raw_topic_names(), VALID_TOPIC, *internal]
        _wait_caught_up(kafka_bootstrap, group, topics, timeout=240)
    finally:
        if first.process.poll() is None:
            first.stop()
        second.stop()

    consumed = _outputs(kafka_bootstrap, starts, run)
    public = [c for c in consumed if c.topic in PUBLIC_TOPICS]
    valid = [decode_touchpoint(c.value) for c in consumed if c.topic == VALID_TOPIC]
    live = [orjson.loads(c.value) for c in public]

    # Every repeat is recognizable: the same key and version carry the same bytes.
    by_identity: dict[tuple[Any, ...], set[bytes]] = defaultdict(set)
    for c, data in zip(public, live, strict=True):
        by_identity[(c.key, *_identity(c.topic, data))].add(c.value)
    assert all(len(values) == 1 for values in by_identity.values())

    # The same final journeys as the undisturbed core over the same validated touchpoints.
    patient = Settings(worker={"allowed_lateness_h": orjson.loads(PATIENCE_HOURS)})
    sim = Simulator(Stitcher(core_config(patient)), partitions=3, seed=0)
    sim.submit(to_touch(touchpoint) for touchpoint in valid)
    baseline = _final([record.to_dict() for record in sim.run()])
    final = _final(live)
    # Kept for the open diagnosis (decision 0010): what differed between the two runs.
    (tmp_path / "final.json").write_bytes(orjson.dumps({"|".join(k): v for k, v in final.items()}))
    (tmp_path / "baseline.json").write_bytes(
        orjson.dumps({"|".join(k): v for k, v in baseline.items()})
    )
    (tmp_path / "live.json").write_bytes(orjson.dumps(live))
    assert {k for k in final if k[0] == "touch"} == {("touch", e) for e in events}
    as_json = {key: orjson.loads(orjson.dumps(data)) for key, data in baseline.items()}
    assert sorted(final) == sorted(as_json)
    differing = [key for key in as_json if final[key] != as_json[key]]
    assert not differing, [(final[k], as_json[k]) for k in differing[:3]]

    # No touchpoint counted twice: a journey's count is the number of its placed touches.
    placed: dict[str, int] = defaultdict(int)
    for (kind, _), data in final.items():
        if kind == "touch" and data["journey_id"] and not data["late"]:
            placed[data["journey_id"]] += 1
    journeys = {k[1]: d for k, d in final.items() if k[0] == "journey"}
    assert {j: d["touch_count"] for j, d in journeys.items()} == dict(placed)
