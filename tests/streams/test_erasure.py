"""Erasure end to end: real Kafka, a real worker, a real sink and the embedded ClickHouse.

Ann is known by a cookie, a loyalty card, an email hash and a phone hash, first as two
profiles (web: cookie and email; store: card and phone) that a login with cookie and card
merges. Bob is someone else. An erasure request naming only Ann's card must remove every trace
of her: ClickHouse rows, state entries (the changelogs read to their end), keys on the
compacted public topics; publish one receipt listing every store; leave Bob as he was; and,
asked to, drop her later touchpoints at ingest. A worker killed mid-erasure finishes it after
a restart with exactly one receipt.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from omnijourney.settings import Settings
from schemas.emitter import Emitter
from schemas.examples import examples
from schemas.pii import PiiHasher
from schemas.privacy import ErasureInput, build_request, decode_receipt, request_record
from schemas.topics import PRIVACY_RECEIPTS_TOPIC, PRIVACY_REQUESTS_TOPIC, VALID_TOPIC
from sinks import rows
from sinks.clickhouse import client
from sinks.erasure import ERASED_TABLES, find_receipt
from sinks.migrations import migrate
from sinks.sink import Sink
from streams.topics import COMPACTED_PUBLIC_TOPICS, PUBLIC_TOPICS, raw_topic_names
from tests.pipeline_support import PII_KEY, Worker, commit_ends, end_offsets

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

HASHER = PiiHasher(PII_KEY.encode(), "US")
WAIT_S = 120.0


def _hex(seed: str) -> str:
    """A 64-hex stand-in for a keyed email/phone hash (no clear PII in tests)."""
    return hashlib.sha256(seed.encode()).hexdigest()


class Person:
    """The identifiers of one synthetic person in one run."""

    def __init__(self, name: str, run: str) -> None:
        self.cookie = f"ck-{name}-{run}"
        self.card = f"card-{name}-{run}"
        self.email_hash = _hex(f"{name}-email-{run}")
        self.phone_hash = _hex(f"{name}-phone-{run}")
        self.prefix = f"{name}-{run}-"

    def keys(self) -> set[str]:
        """Identifier keys `kind:value`."""
        return {
            f"anonymous_id:{self.cookie}",
            f"loyalty_id:{self.card}",
            f"email_hash:{self.email_hash}",
            f"phone_hash:{self.phone_hash}",
        }

    def values(self) -> set[str]:
        """Identifier values (what must appear nowhere after the erasure)."""
        return {self.cookie, self.card, self.email_hash, self.phone_hash}


def _event(person: Person, n: int, channel: str, type_: str, ids: list[tuple[str, str]],
           at: timedelta, start: datetime) -> dict[str, Any]:  # fmt: skip
    template = next(e for e in examples() if e["channel"] == channel and e["type"] == type_)
    template.pop("sent_at", None)
    return {
        **template,
        "event_id": f"{person.prefix}{n:02d}",
        "identities": [{"kind": kind, "value": value} for kind, value in ids],
        "occurred_at": (start + at).isoformat(),
    }


def ann_events(ann: Person, start: datetime) -> list[dict[str, Any]]:
    """Two profiles (web: cookie+email; store: card+phone), merged by a login with both."""
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    cookie, card = ("anonymous_id", ann.cookie), ("loyalty_id", ann.card)
    return [
        _event(ann, 1, "web", "page_view", [cookie], 0 * minute, start),
        _event(ann, 2, "web", "login", [cookie, ("email_hash", ann.email_hash)], 5 * minute, start),
        _event(ann, 3, "pos", "purchase", [card], hour, start),
        _event(ann, 4, "callcenter", "call_started", [("phone_hash", ann.phone_hash), card],
               2 * hour, start),
        _event(ann, 5, "web", "login", [cookie, card], 3 * hour, start),
    ]  # fmt: skip


def bob_events(bob: Person, start: datetime) -> list[dict[str, Any]]:
    """One profile: a cookie and a card."""
    cookie, card = ("anonymous_id", bob.cookie), ("loyalty_id", bob.card)
    return [
        _event(bob, 1, "web", "page_view", [cookie], timedelta(0), start),
        _event(bob, 2, "web", "login", [cookie, card], timedelta(minutes=2), start),
    ]


async def _produce(items: list[tuple[str, bytes, bytes | None]], bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in items:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def produce_events(bootstrap: str, events: list[dict[str, Any]]) -> None:
    emitter = Emitter(HASHER)
    items: list[tuple[str, bytes, bytes | None]] = []
    for event in events:
        topic, key, value = emitter.record(event, now=datetime.now(UTC))
        items.append((topic, key, value))
    asyncio.run(_produce(items, bootstrap))


async def _read_all(bootstrap: str, topic: str, start: int | None = None) -> list[Any]:
    """Every record of a topic from `start` (default: its beginning) to its end now."""
    ends = await end_offsets(bootstrap, [topic])
    pending = {tp for tp, end in ends.items() if end > (start or 0)}
    if not pending:
        return []  # (an aiokafka consumer stopped right after its start raises CancelledError)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(pending))
        for tp in pending:
            if start is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
        out: list[Any] = []
        while pending:
            for records in (await consumer.getmany(*pending, timeout_ms=1000)).values():
                out.extend(records)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return out
    finally:
        await consumer.stop()


def table_view(bootstrap: str, topic: str) -> dict[bytes, bytes]:
    """A topic read to its end as a compacted topic's reader sees it: the live value per key."""
    view: dict[bytes, bytes | None] = {}
    for record in asyncio.run(_read_all(bootstrap, topic)):
        view[record.key] = record.value
    return {key: value for key, value in view.items() if value is not None}


@contextmanager
def running_sink(settings: Settings) -> Iterator[Sink]:
    """The ClickHouse sink on its own thread and event loop (a worker restart may block)."""
    sink = Sink(settings)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(sink.run(stop))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()
    assert not errors, errors


def wait_until(condition: Any, what: str, timeout: float = WAIT_S, log: Path | None = None) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while not condition():
        if datetime.now(UTC) > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        asyncio.run(asyncio.sleep(0.5))


def _strings(conn: Client, table: str) -> str:
    """Every row of a table as one string (to look for values in any column)."""
    columns = ", ".join(rows.COLUMNS[table])
    return repr(conn.query(f"SELECT {columns} FROM {table}").result_rows)


def ann_ids(conn: Client, ann: Person) -> set[str]:
    """Ann's customer ids as ClickHouse knows them (touchpoints and aliases)."""
    ids = {
        str(r[0])
        for r in conn.query(
            "SELECT DISTINCT customer_id FROM touchpoints WHERE startsWith(event_id, {p:String})",
            parameters={"p": ann.prefix},
        ).result_rows
    }
    for alias, survivor in conn.query(
        "SELECT alias_id, survivor_id FROM customer_aliases"
    ).result_rows:
        if alias in ids or survivor in ids:
            ids |= {str(alias), str(survivor)}
    return ids


def bob_counts(conn: Client, bob: Person) -> dict[str, int]:
    """Bob's rows per table (FINAL)."""
    ids = [
        str(r[0])
        for r in conn.query(
            "SELECT DISTINCT customer_id FROM touchpoints FINAL "
            "WHERE startsWith(event_id, {p:String})",
            parameters={"p": bob.prefix},
        ).result_rows
    ]
    assert ids
    return {
        table: int(
            conn.command(
                f"SELECT count() FROM {table} FINAL WHERE customer_id IN {{ids:Array(String)}}",
                parameters={"ids": ids},
            )
        )
        for table in (rows.TOUCHPOINTS, rows.SESSIONS, rows.JOURNEYS, rows.LINKS)
    }


class Run:
    """One test's isolated pipeline: database, sink group, worker group and data dir."""

    def __init__(
        self, bootstrap: str, clickhouse_settings: Settings, base: Path, suppress: bool
    ) -> None:
        self.id = uuid.uuid4().hex[:10]
        self.bootstrap = bootstrap
        self.database = f"erase_{self.id}"
        self.sink_group = f"sink-erase-{self.id}"
        self.group = f"omnijourney-erase-{self.id}"
        self.data = base
        self.suppress = suppress
        ch = clickhouse_settings.clickhouse.model_copy(update={"database": self.database})
        sink = clickhouse_settings.sink.model_copy(
            update={"group_id": self.sink_group, "health_port": 0, "flush_interval_s": 0.2}
        )
        self.settings = clickhouse_settings.model_copy(update={"clickhouse": ch, "sink": sink})
        self.ann, self.bob = Person("ann", self.id), Person("bob", self.id)
        migrate(self.settings)
        self.conn = client(self.settings, autogenerate_session_id=False)
        # Both groups start at the topics' current ends (a shared broker holds older runs).
        asyncio.run(commit_ends(bootstrap, self.sink_group, self.settings.sink.topics))
        inputs = [*raw_topic_names(), VALID_TOPIC, PRIVACY_REQUESTS_TOPIC]
        asyncio.run(commit_ends(bootstrap, self.group, inputs))
        self.receipts_from = asyncio.run(end_offsets(bootstrap, [PRIVACY_RECEIPTS_TOPIC]))

    def worker(self) -> Worker:
        worker = Worker(
            self.bootstrap,
            self.data,
            group_id=self.group,
            OMNIJOURNEY_SINK__GROUP_ID=self.sink_group,
            OMNIJOURNEY_CLICKHOUSE__DATABASE=self.database,
            OMNIJOURNEY_WORKER__LOG_LEVEL="info",
        )
        worker.wait_healthy()
        return worker

    def sink_caught_up(self) -> bool:
        """The sink committed every public record (and the worker produced nothing since)."""
        from tests.sinks.support import committed

        ends = asyncio.run(end_offsets(self.bootstrap, PUBLIC_TOPICS))
        done = asyncio.run(committed(self.settings))
        return all(
            done.get((tp.topic, tp.partition), (0, ""))[0] >= end for tp, end in ends.items()
        )

    def settled(self) -> bool:
        """Every touch in ClickHouse, Ann under one customer, the sink at the topics' end."""
        latest = self.conn.query(
            "SELECT event_id, argMax(customer_id, version) FROM touchpoints "
            "WHERE startsWith(event_id, {a:String}) OR startsWith(event_id, {b:String}) "
            "GROUP BY event_id",
            parameters={"a": self.ann.prefix, "b": self.bob.prefix},
        ).result_rows
        anns = {c for e, c in latest if e.startswith(self.ann.prefix)}
        return len(latest) == 7 and len(anns) == 1 and self.sink_caught_up()

    def request(self) -> str:
        erasure = ErasureInput.model_validate(
            {
                "identifiers": [{"kind": "loyalty_id", "value": self.ann.card}],
                "suppress_future": self.suppress,
            }
        )
        request = build_request(
            erasure,
            request_id=f"req-{self.id}",
            requested_at=datetime.now(UTC),
            requested_by="test:dpo",
        )
        topic, key, value = request_record(request)
        asyncio.run(_produce([(topic, key, value)], self.bootstrap))
        return request.request_id

    def receipts(self, request_id: str) -> list[bytes]:
        start = min(self.receipts_from.values(), default=0)
        found = asyncio.run(_read_all(self.bootstrap, PRIVACY_RECEIPTS_TOPIC, start))
        return [r.value for r in found if r.key == request_id.encode() and r.value is not None]


@pytest.fixture
def run(kafka_bootstrap: str, clickhouse_settings: Settings, tmp_path: Path) -> Iterator[Run]:
    test_run = Run(kafka_bootstrap, clickhouse_settings, tmp_path / "worker", suppress=True)
    try:
        yield test_run
    finally:
        test_run.conn.command(f"DROP DATABASE IF EXISTS `{test_run.database}`")
        test_run.conn.close()


def _loaded(run: Run, worker: Worker) -> tuple[set[str], dict[str, int]]:
    """Produce both people and wait until the pipeline and the sink settled."""
    start = datetime.now(UTC) - timedelta(hours=4)
    produce_events(run.bootstrap, [*ann_events(run.ann, start), *bob_events(run.bob, start)])
    wait_until(run.settled, "both people in ClickHouse", log=worker.log)
    ids = ann_ids(run.conn, run.ann)
    assert len(ids) >= 2, ids  # merged from two profiles: a survivor and an alias
    return ids, bob_counts(run.conn, run.bob)


def _check_forgotten(run: Run, worker: Worker, request_id: str, ids: set[str],
                     bob_before: dict[str, int]) -> None:  # fmt: skip
    ann = run.ann
    [raw] = set(run.receipts(request_id))  # one receipt (a replay repeats it byte for byte)
    receipt = decode_receipt(raw)
    stores = {store.store: store for store in receipt.stores}
    identifiers_log = f"{run.group}-omnijourney-identifiers-changelog"
    customers_log = f"{run.group}-omnijourney-customers-changelog"
    assert set(stores) == {
        f"kafka.{identifiers_log}",
        f"kafka.{customers_log}",
        *(f"kafka.{topic}" for topic in COMPACTED_PUBLIC_TOPICS),
        *(f"clickhouse.{table}" for table in ERASED_TABLES),
    }
    assert stores[f"kafka.{identifiers_log}"].keys_removed == 4
    assert stores[f"kafka.{customers_log}"].keys_removed == len(ids)
    assert receipt.customer_ids_count == len(ids)
    assert stores["clickhouse.touchpoints"].rows_removed >= 5
    assert stores["clickhouse.customer_aliases"].rows_removed >= 1
    assert find_receipt(run.conn, request_id) == receipt
    stored = f"SELECT count() FROM privacy_receipts WHERE request_id = '{request_id}'"
    assert int(run.conn.command(stored)) == 1

    secrets = ann.values() | ids
    # ClickHouse: no row of any table carries Ann's ids or identifiers.
    for table in ERASED_TABLES:
        text = _strings(run.conn, table)
        assert not [s for s in secrets if s in text], table
    assert bob_counts(run.conn, run.bob) == bob_before

    # State: the changelogs read to their end hold no key and no value of Ann.
    for topic in (identifiers_log, customers_log, f"{run.group}-omnijourney-erasures-changelog"):
        view = table_view(run.bootstrap, topic)
        assert view, topic
        text = repr(view)
        assert not [s for s in secrets if s in text], topic
    erasures = table_view(run.bootstrap, f"{run.group}-omnijourney-erasures-changelog")
    assert orjson.loads(erasures[request_id.encode()])["state"]["phase"] == "done"
    # Bob is still there.
    customers = table_view(run.bootstrap, customers_log)
    assert any(run.bob.cookie.encode() in value for value in customers.values())

    # Compacted public topics read to their end: Ann's keys are gone, nothing carries her.
    for topic in COMPACTED_PUBLIC_TOPICS:
        view = table_view(run.bootstrap, topic)
        assert not {key.decode() for key in view} & ids, topic
        text = repr(view)
        assert not [s for s in secrets if s in text], topic
    assert request_id.encode() not in table_view(run.bootstrap, PRIVACY_REQUESTS_TOPIC)


def _suppressed(run: Run, worker: Worker) -> None:
    """Ann's cookie is dropped at ingest now; Bob's next touch goes through."""
    before = asyncio.run(end_offsets(run.bootstrap, [VALID_TOPIC]))
    later = datetime.now(UTC) - timedelta(minutes=5)
    again = _event(run.ann, 9, "web", "page_view", [("anonymous_id", run.ann.cookie)],
                   timedelta(0), later)  # fmt: skip
    marker = _event(run.bob, 9, "web", "page_view", [("anonymous_id", run.bob.cookie)],
                    timedelta(minutes=1), later)  # fmt: skip
    emitter = Emitter(HASHER)
    items: list[tuple[str, bytes, bytes | None]] = []
    for event in (again, marker):
        topic, _, value = emitter.record(event, now=datetime.now(UTC))
        items.append((topic, b"same-partition", value))  # one partition: processed in order

    asyncio.run(_produce(items, run.bootstrap))

    def valid() -> list[bytes]:
        out = []
        for tp, offset in before.items():
            out += [r.value for r in asyncio.run(_read_all(run.bootstrap, tp.topic, offset))
                    if r.partition == tp.partition]  # fmt: skip
        return out

    wait_until(lambda: any(marker["event_id"].encode() in v for v in valid()), "Bob's touch",
               log=worker.log)  # fmt: skip
    assert not any(run.ann.cookie.encode() in value for value in valid())


def test_an_erasure_reaches_every_store_and_leaves_others_untouched(run: Run) -> None:
    worker = run.worker()
    try:
        with running_sink(run.settings):
            ids, bob_before = _loaded(run, worker)
            request_id = run.request()
            wait_until(lambda: bool(run.receipts(request_id)), "the receipt", log=worker.log)
            wait_until(run.sink_caught_up, "the sink at the end")
            _check_forgotten(run, worker, request_id, ids, bob_before)
            _suppressed(run, worker)
            # The same request again (a client retry): no second erasure, no second receipt.
            run.request()
            wait_until(run.sink_caught_up, "the sink at the end")
            assert len(set(run.receipts(request_id))) == 1
    finally:
        worker.stop()


def test_an_erasure_interrupted_by_a_worker_kill_completes_with_one_receipt(run: Run) -> None:
    worker = run.worker()
    try:
        with running_sink(run.settings):
            ids, bob_before = _loaded(run, worker)
        # The sink is stopped: the erasure erases the state, tombstones the topics and then
        # waits for the sink, where the worker dies.
        request_id = run.request()
        tombstoned = set[str]()

        def tombstones_out() -> bool:
            found = asyncio.run(_read_all(run.bootstrap, "journeys.updates"))
            tombstoned.update(r.key.decode() for r in found if r.value is None and r.key)
            return ids <= tombstoned

        wait_until(tombstones_out, "the tombstones", log=worker.log)
        assert not run.receipts(request_id)
        worker.kill()
        worker = run.worker()
        with running_sink(run.settings):
            wait_until(lambda: bool(run.receipts(request_id)), "the receipt", log=worker.log)
            wait_until(run.sink_caught_up, "the sink at the end")
            assert len(run.receipts(request_id)) == 1
            _check_forgotten(run, worker, request_id, ids, bob_before)
    finally:
        worker.stop()
