"""Consent and the journey lookup on a real worker against the real broker (decision 0016).

* The scripted story (tests/streams/test_stitching.py) with personalization consent: its journey
  is on journeys.personalization and the lookup returns it by cookie, loyalty card, phone hash
  (and by the clear phone in a POST body); a later withdrawal tombstones the customer's key
  and the lookup refuses.
* The same story without personalization consent: nothing on the personalization topic for
  that customer, and a refused lookup.
* A touch without analytics consent: counted anonymously, its identifiers nowhere on the public
  topics, in the worker's tables (their changelogs) or in ClickHouse (through the sink).

The input topics (`touchpoints.<channel>`, `touchpoints.valid`) hold what the producer sent
until their retention, and the internal protocol topic carries the consent notice keyed by
the identifier: those are inputs and plumbing with retention, not stores (docs/privacy.md).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from omnijourney.settings import Settings
from schemas.contracts import PERSONALIZATION_TOPIC, PUBLIC_TOPICS, SINK_TOPICS
from schemas.emitter import Emitter
from sinks.clickhouse import client
from sinks.sink import Sink
from tests.pipeline_support import Worker, commit_ends, end_offsets, read_from
from tests.sinks.support import TABLES, isolated, prepare, run_until
from tests.streams.test_stitching import HASHER, _event, _latest, _settled, story

pytestmark = pytest.mark.kafka

GRANTED = {"analytics": True, "personalization": True, "marketing": True}
STORY_PHONE = "+1 202-555-0147"


def _phone(run: str) -> str:
    """A synthetic phone of the run (555-01xx is reserved for fiction): runs on one broker
    must not share the story's phone, or their calls would join one customer."""
    return f"+1 202-555-01{int(run[:6], 16) % 47:02d}"


def _drama_phone(run: str) -> str:
    """A phone no other test of the module uses (Ofcom's London drama block, not 555-01xx):
    the no-analytics test searches every changelog for its hash, and the other tests' 47
    phones would sometimes share it."""
    return f"+44 20 7946 0{int(run[:6], 16) % 1000:03d}"


def _with_consent(
    run: str, events: list[dict[str, Any]], consent: dict[str, bool]
) -> list[dict[str, Any]]:
    def ids(event: dict[str, Any]) -> list[dict[str, str]]:
        return [
            {**i, "value": _phone(run)} if i["value"] == STORY_PHONE else i
            for i in event["identities"]
        ]

    return [{**event, "consent": consent, "identities": ids(event)} for event in events]


async def _produce(bootstrap: str, events: list[dict[str, Any]]) -> None:
    emitter = Emitter(HASHER)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            topic, key, value = emitter.record(event, now=datetime.now(UTC))
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _read(
    bootstrap: str, starts: dict[TopicPartition, int], run: str, done: Any, wait_s: float = 90
) -> dict[str, list[dict[str, Any]]]:
    """Records of the run on the public topics from `starts`, until `done(out)` holds."""
    out: dict[str, list[dict[str, Any]]] = {topic: [] for topic in PUBLIC_TOPICS}
    deadline = time.monotonic() + wait_s
    position = dict(starts)
    while time.monotonic() < deadline:
        for record in await read_from(bootstrap, position):
            position[TopicPartition(record.topic, record.partition)] = record.offset + 1
            if record.topic in out and run.encode() in record.value:
                out[record.topic].append(orjson.loads(record.value))
        if done(out):
            break
        await asyncio.sleep(0.5)
    return out


def _story(bootstrap: str, run: str, events: list[dict[str, Any]]) -> dict[str, list[dict]]:
    in_journey = len([e for e in events if e["channel"] != "crm"])
    starts = asyncio.run(end_offsets(bootstrap, PUBLIC_TOPICS))
    asyncio.run(_produce(bootstrap, events))
    return asyncio.run(
        _read(bootstrap, starts, run, lambda out: _settled(out, len(events), in_journey))
    )


def _journey(out: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    live = [
        j for j in _latest(out["journeys.updates"], "journey_id").values()
        if j["status"] != "superseded"
    ]  # fmt: skip
    assert len(live) == 1, live
    return live[0]


def _http(worker: Worker, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{worker.port}{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


def _get(worker: Worker, kind: str, value: str) -> tuple[int, Any]:
    return _http(worker, f"/v1/journeys/{kind}/{urllib.parse.quote(value, safe='')}")


def _until(call: Any, ok: Any, wait_s: float = 60) -> tuple[int, Any]:
    """Call until `ok(answer)` (the tables are written just after the records are out)."""
    deadline = time.monotonic() + wait_s
    answer = call()
    while not ok(answer) and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = call()
    return answer


async def _personalization(
    bootstrap: str, starts: dict[TopicPartition, int], keys: set[bytes]
) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of the personalization topic's records after `starts` with these keys."""
    records = await read_from(bootstrap, starts)
    return [(r.key, r.value) for r in records if r.key in keys]


def _personalization_starts(bootstrap: str) -> dict[TopicPartition, int]:
    return asyncio.run(end_offsets(bootstrap, [PERSONALIZATION_TOPIC]))


def test_the_lookup_returns_the_story_journey_by_cookie_card_and_phone_hash(
    worker: Worker, kafka_bootstrap: str
) -> None:
    run = uuid.uuid4().hex[:10]
    p_starts = _personalization_starts(kafka_bootstrap)
    out = _story(kafka_bootstrap, run, _with_consent(run, story(run), GRANTED))
    journey = _journey(out)
    customer = journey["customer_id"]
    assert journey["consent"] == GRANTED

    def complete(answer: tuple[int, Any]) -> bool:
        status, body = answer
        return status == 200 and body["journey"]["touch_count"] == journey["touch_count"]

    phone_hash = HASHER.phone_hash(_phone(run))
    for kind, value in (
        ("anonymous_id", f"cookie-{run}"),
        ("loyalty_id", f"LOY-{run}"),
        ("phone_hash", phone_hash),
        ("device_id", f"device-{run}"),
    ):
        status, body = _until(lambda k=kind, v=value: _get(worker, k, v), complete)
        assert status == 200, (kind, body, worker.log_tail())
        assert body["customer_id"] == customer, kind
        assert body["consent"] == GRANTED
        found = body["journey"]
        assert found["journey_id"] == journey["journey_id"]
        assert found["channel_path"] == ["web", "app", "pos", "callcenter"]
        assert found["status"] == "converted"
    # the clear phone number, hashed at the view as at the edge (POST: never in a URL)
    status, body = _http(worker, "/v1/journeys/lookup", {"kind": "phone", "value": _phone(run)})
    assert status == 200 and body["journey"]["journey_id"] == journey["journey_id"]

    # the personalization topic carries the customer's journey under its id
    published = asyncio.run(_personalization(kafka_bootstrap, p_starts, {customer.encode()}))
    assert published and all(value is not None for _, value in published)
    assert orjson.loads(published[-1][1] or b"")["journey_id"] == journey["journey_id"]

    # the customer withdraws personalization consent: a tombstone, then a refused lookup
    withdraw = _event(run, 10, "web", "page_view", [{"kind": "anonymous_id",
                      "value": f"cookie-{run}"}], timedelta(hours=40))  # fmt: skip
    withdraw["consent"] = {"analytics": True, "personalization": False, "marketing": False}
    asyncio.run(_produce(kafka_bootstrap, [withdraw]))
    status, body = _until(lambda: _get(worker, "loyalty_id", f"LOY-{run}"), lambda a: a[0] == 403)
    assert status == 403 and body["errors"][0]["loc"] == "consent.personalization"
    published = asyncio.run(_personalization(kafka_bootstrap, p_starts, {customer.encode()}))
    assert published[-1] == (customer.encode(), None)  # compaction forgets the customer


def test_the_lookup_refuses_bad_and_unknown_identifiers(worker: Worker) -> None:
    status, body = _get(worker, "shoe_size", "42")
    assert status == 400 and body["errors"][0]["loc"] == "kind"
    status, body = _get(worker, "email", "jane.roe@example.com")  # clear email in a URL
    assert status == 400 and body["errors"][0]["loc"] == "kind"
    assert "jane" not in json.dumps(body)
    status, body = _http(worker, "/v1/journeys/lookup", {"kind": "phone", "value": "12"})
    assert status == 400 and body["errors"][0]["loc"] == "value"
    status, body = _get(worker, "anonymous_id", f"never-seen-{uuid.uuid4().hex}")
    assert status == 404
    log = worker.log_tail(1_000_000)
    assert "jane" not in log and "555-01" not in log and "555 01" not in log


def test_without_personalization_consent_nothing_is_published_and_the_lookup_refuses(
    worker: Worker, kafka_bootstrap: str
) -> None:
    run = uuid.uuid4().hex[:10]
    p_starts = _personalization_starts(kafka_bootstrap)
    analytics_only = {"analytics": True, "personalization": False, "marketing": True}
    out = _story(kafka_bootstrap, run, _with_consent(run, story(run), analytics_only))
    journey = _journey(out)
    assert journey["consent"] == analytics_only  # marketing travels for analysts
    customers = {t["customer_id"].encode() for t in out["journeys.touchpoints"]}
    status, _ = _until(lambda: _get(worker, "anonymous_id", f"cookie-{run}"), lambda a: a[0] != 404)
    assert status == 403
    published = asyncio.run(_personalization(kafka_bootstrap, p_starts, customers))
    assert [value for _, value in published if value is not None] == []


@pytest.mark.clickhouse
def test_a_touch_without_analytics_consent_leaves_no_identifier_anywhere(
    worker: Worker, kafka_bootstrap: str, clickhouse_settings: Settings
) -> None:
    run = uuid.uuid4().hex[:10]
    cookie, card = f"cookie-{run}", f"LOY-{run}"
    settings = isolated(clickhouse_settings, topics=SINK_TOPICS)
    prepare(settings, stop_merges=False)
    asyncio.run(commit_ends(kafka_bootstrap, settings.sink.group_id, SINK_TOPICS))
    starts = asyncio.run(end_offsets(kafka_bootstrap, [*PUBLIC_TOPICS, PERSONALIZATION_TOPIC]))
    refused = {"analytics": False, "personalization": True, "marketing": True}
    ids = [{"kind": "anonymous_id", "value": cookie}, {"kind": "loyalty_id", "value": card},
           {"kind": "phone", "value": _drama_phone(run)}]  # fmt: skip
    events = [
        {**_event(run, 1, "web", "product_view", ids[:1], timedelta(0)), "consent": refused},
        {**_event(run, 2, "pos", "purchase", ids, timedelta(hours=1)), "consent": refused},
    ]
    asyncio.run(_produce(kafka_bootstrap, events))

    def counted(out: dict[str, list[dict[str, Any]]]) -> bool:
        anonymous = [r for r in out["journeys.touchpoints"]
                     if r["record_type"] == "anonymous_touchpoint"]  # fmt: skip
        return len(anonymous) == len(events)

    out = asyncio.run(_read(kafka_bootstrap, starts, run, counted))
    assert counted(out), out
    anonymous = out["journeys.touchpoints"]
    assert {r["event_id"] for r in anonymous} == {e["event_id"] for e in events}
    assert all("customer_id" not in r and "identities" not in r for r in anonymous)

    secrets = [cookie.encode(), card.encode(), HASHER.phone_hash(_drama_phone(run)).encode()]
    # public topics, the personalization topic and the worker's tables (their changelogs)
    changelogs = [f"{worker.app_id}-omnijourney-{name}-changelog"
                  for name in ("identifiers", "customers")]  # fmt: skip
    tables = asyncio.run(end_offsets(kafka_bootstrap, changelogs))
    everything = asyncio.run(read_from(kafka_bootstrap, {**starts, **dict.fromkeys(tables, 0)}))
    for record in everything:
        raw = (record.key or b"") + (record.value or b"")
        assert not any(secret in raw for secret in secrets), (record.topic, raw[:300])
    for kind, value in (("anonymous_id", cookie), ("loyalty_id", card)):
        assert _get(worker, kind, value)[0] == 404  # never stored, so never found

    # ClickHouse, through the sink: counted anonymously, no row carries an identifier
    conn = client(settings)
    try:

        def landed() -> bool:
            sql = "SELECT count() FROM anonymous_touchpoints WHERE event_id LIKE {run:String}"
            return int(conn.command(sql, parameters={"run": f"{run}-%"})) == len(events)

        sink = Sink(settings)
        asyncio.run(run_until(sink, landed, 120, "the anonymous touches in ClickHouse"))

        def rows_with(table: str, text: str) -> int:
            sql = (
                f"SELECT count() FROM {table} WHERE position(formatRow('TSV', *), {{s:String}}) > 0"
            )
            return int(conn.command(sql, parameters={"s": text}))

        assert rows_with("anonymous_touchpoints", f"{run}-02") == 1  # the search finds rows
        for table in TABLES:
            for secret in secrets:
                assert rows_with(table, secret.decode()) == 0, (table, secret)
    finally:
        conn.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")
        conn.close()
