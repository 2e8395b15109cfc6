"""The stitching stages in a real worker against the real broker: a scripted omnichannel story.

Anonymous web browsing, a login, app use on a second device, a CRM update tying the loyalty
card and phone to the customer, a call from the phone about an order, and the till's nightly
upload (a store visit and a purchase with the loyalty card) that reaches Kafka after the call
although it happened 8 hours before it. The public topics must end with one customer and one
converted journey web -> app -> pos -> callcenter, the late store touches placed where they
happened.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.contracts import PUBLIC_TOPICS
from schemas.emitter import Emitter
from schemas.examples import examples
from schemas.pii import PiiHasher
from schemas.topics import topic_for
from tests.pipeline_support import PII_KEY, Worker, end_offsets

pytestmark = pytest.mark.kafka

HASHER = PiiHasher(PII_KEY.encode(), "US")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _event(
    run: str, n: int, channel: str, type_: str, ids: list[dict[str, str]], at: timedelta
) -> dict[str, Any]:
    template = next(e for e in examples() if e["channel"] == channel and e["type"] == type_)
    template.pop("sent_at", None)  # the emitter stamps the real send time (skew correction)
    return {
        **template,
        "event_id": f"{run}-{n:02d}",
        "identities": ids,
        "occurred_at": (T0 + at).isoformat(),
    }


def story(run: str) -> list[dict[str, Any]]:
    """The touchpoints of one person, in the order they reach Kafka."""
    cookie = {"kind": "anonymous_id", "value": f"cookie-{run}"}
    device = {"kind": "device_id", "value": f"device-{run}"}
    customer = {"kind": "customer_id", "value": f"CUST-{run}"}
    loyalty = {"kind": "loyalty_id", "value": f"LOY-{run}"}
    phone = {"kind": "phone", "value": "+1 202-555-0147"}
    hour = timedelta(hours=1)
    return [
        _event(run, 1, "web", "page_view", [cookie], timedelta(0)),
        _event(run, 2, "web", "product_view", [cookie], 2 * timedelta(minutes=1)),
        _event(run, 3, "web", "login", [cookie, customer], 5 * timedelta(minutes=1)),
        _event(run, 4, "app", "login", [device, customer], 3 * hour),
        _event(run, 5, "app", "product_view", [device], 3 * hour + timedelta(minutes=1)),
        _event(run, 6, "crm", "customer_update", [customer, loyalty, phone], 20 * hour),
        _event(run, 9, "callcenter", "call_started", [phone], 34 * hour),
        # The till's nightly upload: the store visit and purchase happened 8 hours before the
        # call above but reach Kafka after it.
        _event(run, 7, "pos", "store_visit", [loyalty], 25 * hour + timedelta(minutes=50)),
        _event(run, 8, "pos", "purchase", [loyalty], 26 * hour),
    ]


async def _run_story(
    bootstrap: str, run: str, events: int, in_journey: int, wait_s: float = 60.0
) -> dict[str, list[dict[str, Any]]]:
    starts = await end_offsets(bootstrap, PUBLIC_TOPICS)
    emitter = Emitter(HASHER)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in story(run):
            topic, key, value = emitter.record(event, now=datetime.now(UTC))
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: dict[str, list[dict[str, Any]]] = {topic: [] for topic in PUBLIC_TOPICS}
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        deadline = asyncio.get_running_loop().time() + wait_s
        # Read until every touchpoint has its enriched record under the final customer.
        while asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if run.encode() in record.value:
                        out[record.topic].append(orjson.loads(record.value))
            if _settled(out, events, in_journey):
                break
    finally:
        await consumer.stop()
    return out


def _latest(records: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        if record[key] not in latest or record["version"] > latest[record[key]]["version"]:
            latest[record[key]] = record
    return latest


def _settled(out: dict[str, list[dict[str, Any]]], events: int, in_journey: int) -> bool:
    touches = _latest(out["journeys.touchpoints"], "event_id")
    journeys = [
        j
        for j in _latest(out["journeys.updates"], "journey_id").values()
        if j["status"] != "superseded"
    ]
    return (
        len(touches) == events
        and len({t["customer_id"] for t in touches.values() if t["journey_id"]}) == 1
        and len(journeys) == 1
        and journeys[0]["touch_count"] == in_journey
    )


def test_scripted_story_is_one_customer_and_one_journey(
    worker: Worker, kafka_bootstrap: str
) -> None:
    run = uuid.uuid4().hex[:10]
    events = story(run)
    journey_touches = [e for e in events if e["channel"] != "crm"]  # crm links, no journey
    out = asyncio.run(_run_story(kafka_bootstrap, run, len(events), len(journey_touches)))

    touches = _latest(out["journeys.touchpoints"], "event_id")
    assert set(touches) == {e["event_id"] for e in events}, worker.log.read_text()[-3000:]
    merges = [m for m in out["identity.merges"] if m["record_type"] == "merge"]
    survivor_of = {m["alias_id"]: m["survivor_id"] for m in merges}

    def resolve(customer_id: str) -> str:
        while customer_id in survivor_of:  # aliases may chain: A -> B -> C
            customer_id = survivor_of[customer_id]
        return customer_id

    customers = {resolve(t["customer_id"]) for t in touches.values()}
    assert len(customers) == 1, sorted(
        (t["event_id"], t["customer_id"], t["version"]) for t in out["journeys.touchpoints"]
    )
    [customer] = customers
    assert touches[f"{run}-06"]["journey_id"] is None  # the CRM update is identity evidence only

    journeys = _latest(out["journeys.updates"], "journey_id")
    live = [j for j in journeys.values() if j["status"] != "superseded"]
    assert len(live) == 1, [
        (j["journey_id"], j["status"], j["channel_path"], j["touch_count"]) for j in live
    ]
    [journey] = live
    assert journey["customer_id"] == customer
    assert journey["channel_path"] == ["web", "app", "pos", "callcenter"]
    assert journey["status"] == "converted"
    assert journey["conversion_channel"] == "pos"
    assert journey["conversion_event_id"] == f"{run}-08"
    assert journey["touch_count"] == len(journey_touches), sorted(
        (t["event_id"], t["journey_id"], t["position"], t["late"], t["occurred_at"])
        for t in touches.values()
    )

    # The late till upload sits where it happened: right before the purchase.
    positions = {
        event_id: t["position"] for event_id, t in touches.items() if t["journey_id"] is not None
    }
    assert positions[f"{run}-07"] + 1 == positions[f"{run}-08"]
    assert sorted(positions.values()) == list(range(1, len(journey_touches) + 1))

    # Every identifier of the person was linked to the surviving customer, evidence named.
    links = out["identity.links"]
    kinds = {link["identifier_kind"] for link in links}
    assert kinds >= {"anonymous_id", "device_id", "customer_id", "loyalty_id", "phone_hash"}
    assert all(m["survivor_id"] < m["alias_id"] for m in merges)

    # No clear phone number anywhere on the public topics.
    raw = orjson.dumps(out)
    assert b"555-0147" not in raw and b"2025550147" not in raw


def test_the_worker_exposes_prometheus_metrics_of_every_stage(
    worker: Worker, kafka_bootstrap: str
) -> None:
    run = uuid.uuid4().hex[:10]
    events = story(run)
    journey_touches = [e for e in events if e["channel"] != "crm"]
    asyncio.run(_poison(kafka_bootstrap))
    asyncio.run(_run_story(kafka_bootstrap, run, len(events), len(journey_touches)))
    dead = 'omnijourney_dead_letters_total{stage="ingest"}'
    deadline = time.monotonic() + 60
    samples = _metrics(worker)
    while samples.get(dead, 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
        samples = _metrics(worker)
    assert samples[dead] >= 1
    assert samples['omnijourney_stage_events_in_total{stage="ingest"}'] >= len(events)
    for stage in ("route", "identifiers", "customers"):
        assert samples[f'omnijourney_stage_events_in_total{{stage="{stage}"}}'] > 0
    assert samples["omnijourney_merges_total"] >= 3  # the story's four profiles became one
    assert samples["omnijourney_end_to_end_latency_seconds_count"] > 0
    assert any(name.startswith("omnijourney_consumer_lag{") for name in samples)


async def _poison(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic_for("web"), b"{not json", key=b"poison")
    finally:
        await producer.stop()


def _metrics(worker: Worker) -> dict[str, float]:
    """The worker's Prometheus samples by name and labels."""
    url = f"http://127.0.0.1:{worker.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
