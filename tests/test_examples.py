"""The examples: the till producer on the real broker, the personalization subscriber on records
the stitching core really produces (and on the real broker, with every record sent twice)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from examples.personalization_subscriber import Personalizer, Versions, describe, follow
from examples.till_producer import (
    Shopper,
    Till,
    basket_line,
    basket_total,
    parse_args,
    run,
    spool,
    upload_records,
)
from omnijourney.local.admin import declare_topics, ensure_topics
from omnijourney.settings import Settings
from schemas.contracts import (
    JOURNEYS_TOPIC,
    TOPIC_OF_RECORD,
    TOUCHPOINTS_TOPIC,
    JourneyUpdateRecord,
    decode_record,
)
from schemas.emitter import Emitter
from schemas.pii import PiiHasher
from schemas.topics import topic_for
from schemas.validation import parse_touchpoint
from streams.core.model import Consent, Identifier, Touch
from streams.core.records import JourneyUpdate, Record
from streams.core.simulation import Simulator
from streams.core.stitcher import Stitcher
from streams.stitching import encode_record
from streams.topics import pipeline_topics
from tests.pipeline_support import CLEAR_EMAIL, PII_KEY, end_offsets, read_from

HASHER = PiiHasher(PII_KEY.encode(), "US")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
YES = Consent(personalization=True)
NO = Consent(personalization=False)


def _touch(
    event_id: str,
    channel: str,
    type_: str,
    at: timedelta,
    ids: Iterable[tuple[str, str]],
    consent: Consent = YES,
    **properties: str,
) -> Touch:
    value = Decimal("49.90") if type_ == "purchase" else None
    return Touch(
        event_id=event_id,
        channel=channel,
        type=type_,
        occurred_at=T0 + at,
        received_at=T0 + at,
        identities=tuple(Identifier(kind, v) for kind, v in ids),
        consent=consent,
        value=value,
        currency="EUR" if value is not None else None,
        properties=properties,
    )


def web_then_store(consent: Consent = YES, *, buy: bool = False) -> list[Touch]:
    """A product viewed online by a logged-in customer, then the loyalty card in a store."""
    web = [("anonymous_id", "ck-1"), ("customer_id", "CUST-1")]
    store = [("loyalty_id", "LOY-1"), ("customer_id", "CUST-1")]
    touches = [
        _touch("e1", "web", "product_view", timedelta(0), web, consent, product_id="P-1001"),
        _touch("e2", "pos", "store_visit", timedelta(hours=2), store, consent, store_id="S-017"),
    ]
    if buy:
        at = timedelta(hours=2, minutes=10)
        touches.append(_touch("e3", "pos", "purchase", at, store, consent, store_id="S-017"))
    return touches


def stitched(touches: list[Touch]) -> list[Record]:
    """What the stitching core publishes for the touches (not its internal signals)."""
    simulator = Simulator(Stitcher())
    simulator.submit(touches)
    return [record for record in simulator.run() if record.record_type in TOPIC_OF_RECORD]


def public(records: list[Record]) -> list[tuple[str, bytes]]:
    """(topic, value) of the records on the two topics the subscriber reads."""
    encoded = [encode_record(record) for record in records]
    return [(t, v) for t, _, v in encoded if t in (TOUCHPOINTS_TOPIC, JOURNEYS_TOPIC)]


def lines_of(
    messages: list[tuple[str, bytes]], personalizer: Personalizer | None = None
) -> list[str]:
    """Feed messages to a personalizer; the lines it writes (flushing what still waits)."""
    personalizer = personalizer or Personalizer()
    out: list[str] = []
    for topic, value in messages:
        out += personalizer.handle(topic, value)
    return out + personalizer.flush()


def _customer(records: list[Record]) -> str:
    return next(r.customer_id for r in records if isinstance(r, JourneyUpdate))


# --- the subscriber, pure ---------------------------------------------------------------------


def test_the_subscriber_forgets_a_customer_who_withdrew_consent() -> None:
    records = stitched(web_then_store())
    customer = _customer(records)
    personalizer = Personalizer()
    touchpoints = [m for m in public(records) if m[0] == TOUCHPOINTS_TOPIC]
    lines_of(touchpoints[:1], personalizer)
    assert customer in personalizer.browsed
    personalizer.forget(customer)  # a tombstone on journeys.personalization
    assert customer not in personalizer.browsed


def test_browsed_online_and_now_in_store() -> None:
    records = stitched(web_then_store())
    customer = _customer(records)
    assert lines_of(public(records)) == [
        f"customer {customer} is looking at product P-1001 (web)",
        f"customer {customer} browsed product P-1001 online and is now in store S-017",
    ]


def test_repeated_records_give_no_second_line() -> None:
    messages = public(stitched(web_then_store()))
    personalizer = Personalizer()
    first = lines_of(messages, personalizer)
    assert len(first) == 2
    assert lines_of(messages, personalizer) == []  # the whole stream again: all repeats


def test_an_update_waits_for_its_touchpoint() -> None:
    messages = public(stitched(web_then_store()))
    updates = [m for m in messages if m[0] == JOURNEYS_TOPIC]
    touchpoints = [m for m in messages if m[0] == TOUCHPOINTS_TOPIC]
    personalizer = Personalizer()
    assert lines_of(updates[:1], Personalizer()) != []  # flushed without context at the end
    assert [line for m in updates for line in personalizer.handle(*m)] == []
    lines = [line for m in touchpoints for line in personalizer.handle(*m)]
    assert lines[-1].endswith("browsed product P-1001 online and is now in store S-017")


def test_superseded_and_older_versions_are_skipped() -> None:
    messages = public(stitched(web_then_store()))
    personalizer = Personalizer()
    lines_of(messages, personalizer)
    last = decode_record(messages[-1][1])
    assert isinstance(last, JourneyUpdateRecord)
    superseded = last.model_copy(
        update={"status": "superseded", "superseded_by": "j-other", "version": last.version + 1}
    )
    older = last.model_copy(update={"version": last.version - 1})
    assert personalizer.journey(superseded) == []
    assert personalizer.journey(older) == []


def test_a_new_version_that_reads_the_same_gives_no_line() -> None:
    records = stitched(web_then_store(NO))
    personalizer = Personalizer()
    lines_of(public(records), personalizer)
    last = next(r for r in reversed(records) if isinstance(r, JourneyUpdate))
    update = decode_record(encode_record(last)[2])
    assert isinstance(update, JourneyUpdateRecord)
    same = update.model_copy(update={"version": update.version + 1})
    longer = update.model_copy(update={"version": update.version + 2, "touch_count": 3})
    assert personalizer.journey(same) == []
    assert personalizer.journey(longer) == [
        f"customer {update.customer_id} is on a web -> pos journey (3 touches, last pos)"
    ]


def test_without_personalization_consent_no_product_or_store() -> None:
    records = stitched(web_then_store(NO))
    customer = _customer(records)
    assert lines_of(public(records))[-1] == (
        f"customer {customer} is on a web -> pos journey (2 touches, last pos)"
    )


def test_bought_in_store_after_browsing_online() -> None:
    records = stitched(web_then_store(buy=True))
    customer = _customer(records)
    assert lines_of(public(records))[-1] == (
        f"customer {customer} browsed product P-1001 online and bought in store S-017 (49.90 EUR)"
    )


def test_describe_without_context_and_expired() -> None:
    messages = public(stitched(web_then_store()))
    update = decode_record(messages[-1][1])
    assert isinstance(update, JourneyUpdateRecord)
    who = f"customer {update.customer_id}"
    assert describe(update, None, "S-017") == f"{who} is now in store S-017 (journey web -> pos)"
    expired = update.model_copy(update={"status": "expired"})
    assert describe(expired, "P-1", None) == (
        f"{who}'s journey web -> pos ended without a purchase (2 touches)"
    )


def test_versions_remember_the_highest_and_forget_the_oldest() -> None:
    versions = Versions(limit=2)
    assert versions.fresh("a", 3)
    assert not versions.fresh("a", 3)
    assert not versions.fresh("a", 2)
    assert versions.fresh("a", 4)
    assert versions.fresh("b", 1)
    assert versions.fresh("c", 1)  # "a" is forgotten now
    assert versions.fresh("a", 1)


# --- the till, pure ---------------------------------------------------------------------------


def test_basket_lines_and_total() -> None:
    lines = [basket_line("P-1001:39.90", "EUR"), basket_line("P-2002:5.00x2", "EUR")]
    assert lines[1] == {
        "product_id": "P-2002",
        "quantity": "2",
        "unit_price": {"amount": "5.00", "currency": "EUR"},
    }
    assert basket_total(lines) == Decimal("49.90")
    for bad in ("P-1", "P-1:abc", ":3.00", "P-1:1.00x0", "P-1:-2"):
        with pytest.raises(ValueError, match="basket line"):
            basket_line(bad, "EUR")


def test_a_known_shopper_gives_a_visit_and_a_purchase() -> None:
    till = Till("S-017", "T-03")
    shopper = Shopper("LOY-1", "jane.roe@example.com", personalization=True)
    visit, purchase = till.sale(shopper, [basket_line("P-1:10.00", "EUR")], T0, receipt_id="R-1")
    emitter = Emitter(HASHER)
    checked = [emitter.touchpoint(event, now=T0) for event in (visit, purchase)]
    assert [t.type for t in checked] == ["store_visit", "purchase"]
    assert checked[0].occurred_at == T0 - timedelta(minutes=5)
    assert {i.kind for i in checked[1].identities} == {"loyalty_id", "email_hash"}
    assert checked[1].consent.personalization is True
    assert checked[1].properties.total.amount == Decimal("10.00")


def test_a_cash_sale_is_known_by_its_receipt_only() -> None:
    events = Till("S-017", "T-03").sale(
        Shopper(), [basket_line("P-1:1", "EUR")], T0, receipt_id="R-9"
    )
    assert [e["type"] for e in events] == ["purchase"]
    assert events[0]["identities"] == [{"kind": "anonymous_id", "value": "rcpt-R-9"}]
    assert "consent" not in events[0]


def test_the_spool_holds_hashes_and_the_upload_time_places_the_sale(tmp_path: Path) -> None:
    emitter, path = Emitter(HASHER), tmp_path / "spool.jsonl"
    sale = T0 - timedelta(hours=8)
    shopper = Shopper("LOY-1", CLEAR_EMAIL.decode())
    events = Till("S-017", "T-03").sale(
        shopper, [basket_line("P-1:9.99", "EUR")], sale, receipt_id="R-2"
    )
    spool(path, emitter, events, sale)
    held = path.read_bytes()
    assert CLEAR_EMAIL not in held.lower()
    assert b"sent_at" not in held
    assert len(held.splitlines()) == 2
    records = upload_records(path, emitter, T0)  # the night: sent_at is the upload time
    assert {r.topic for r in records} == {topic_for("pos")}
    arrived = [parse_touchpoint(r.value, received_at=T0, hasher=HASHER) for r in records]
    assert [t.occurred_at for t in arrived] == [sale - timedelta(minutes=5), sale]


# --- on the real broker -----------------------------------------------------------------------


def _settings(settings: Settings, bootstrap: str) -> Settings:
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": bootstrap}),
            "privacy": settings.privacy.model_copy(update={"pii_hash_key": SecretStr(PII_KEY)}),
        }
    )


async def _till_run(settings: Settings, argv: list[str], now: datetime) -> list[tuple[bytes, int]]:
    """Run the till; (value, timestamp type) of what it wrote to the POS topic."""
    pos = topic_for("pos")
    await declare_topics(settings.kafka.bootstrap, pipeline_topics(settings))
    starts = await end_offsets(settings.kafka.bootstrap, [pos])
    await run(settings, parse_args(argv), clock=lambda: now)
    return [(r.value, r.timestamp_type) for r in await read_from(settings.kafka.bootstrap, starts)]


@pytest.mark.kafka
def test_till_sends_valid_pos_touchpoints(kafka_settings: Settings, kafka_bootstrap: str) -> None:
    settings = _settings(kafka_settings, kafka_bootstrap)
    store = f"S-{uuid.uuid4().hex[:8]}"
    argv = ["--store", store, "--line", "P-1001:39.90", "--line", "P-2002:5.00x2"]
    argv += ["--loyalty", "LOY-4410-2231", "--email", CLEAR_EMAIL.decode()]
    now = datetime.now(UTC)
    written = asyncio.run(_till_run(settings, argv, now))
    ours = [(v, t) for v, t in written if store.encode() in v]
    assert len(ours) == 2
    assert all(t == 1 for _, t in ours)  # LogAppendTime: the broker stamps received_at
    assert all(CLEAR_EMAIL not in v.lower() for v, _ in ours)
    checked = [parse_touchpoint(v, received_at=now, hasher=HASHER) for v, _ in ours]
    assert [t.type for t in checked] == ["store_visit", "purchase"]
    assert checked[1].properties.total.amount == Decimal("49.90")


@pytest.mark.kafka
def test_till_nightly_upload(
    kafka_settings: Settings, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_settings, kafka_bootstrap)
    store, path = f"S-{uuid.uuid4().hex[:8]}", tmp_path / "till.jsonl"
    sale = datetime.now(UTC) - timedelta(hours=8)
    argv = ["--store", store, "--line", "P-1:3.50", "--loyalty", "LOY-9", "--spool", str(path)]
    assert asyncio.run(_till_run(settings, argv, sale)) == []  # kept, not sent
    uploaded_at = datetime.now(UTC)
    written = asyncio.run(_till_run(settings, ["--upload", str(path)], uploaded_at))
    ours = [v for v, _ in written if store.encode() in v]
    assert path.read_bytes() == b""
    checked = [parse_touchpoint(v, received_at=uploaded_at, hasher=HASHER) for v in ours]
    assert [t.occurred_at for t in checked] == [sale - timedelta(minutes=5), sale]


@pytest.mark.kafka
def test_subscriber_on_the_broker_ignores_repeats(kafka_bootstrap: str) -> None:
    run_id = uuid.uuid4().hex[:8]
    topics = {
        TOUCHPOINTS_TOPIC: f"test.{run_id}.touchpoints",
        JOURNEYS_TOPIC: f"test.{run_id}.updates",
    }
    records = stitched(web_then_store())
    messages = [encode_record(record) for record in records]
    ours = [(topics[t], k, v) for t, k, v in messages if t in topics]
    sent = ours + ours  # a replay after a crash sends everything again

    async def scenario() -> list[str]:
        await ensure_topics(kafka_bootstrap, dict.fromkeys(topics.values(), 3))
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for topic, key, value in sent:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()
        lines: list[str] = []
        read = await follow(
            list(topics.values()),
            from_beginning=True,
            max_messages=len(sent),
            out=lines.append,
            connection={"bootstrap_servers": kafka_bootstrap},
        )
        assert read == len(sent)
        return lines

    customer = _customer(records)
    online = f"customer {customer} is looking at product P-1001 (web)"
    in_store = f"customer {customer} browsed product P-1001 online and is now in store S-017"
    # The topics are not ordered with each other: when both updates come before the first
    # touchpoint, the older one is replaced while it waits and only the newer one is said.
    assert asyncio.run(scenario()) in ([online, in_store], [in_store])
    assert orjson.loads(ours[0][2])["customer_id"] == customer
