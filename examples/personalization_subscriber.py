"""A personalization service in miniature: follow the journey topics, say what each customer does.

    PYTHONPATH=. python -m examples.personalization_subscriber [--from-beginning]
        [--max-messages N]

Reads `journeys.personalization` (a journey's state after each change, for customers whose
latest consent allows personalization only; a tombstone when a customer withdraws it) and
`journeys.touchpoints` (every touchpoint with its customer, to know the last product a
customer looked at online and the store the last touch happened in) and prints lines such as

    customer c0000017a2b3 browsed product P-1001 online and is now in store S-017

What a consumer of the public topics must do, shown on a small scale:

* a journey update is a repeat when its journey was already shown at that version or a newer
  one (at-least-once delivery re-sends records after a worker restart; the records carry the
  version, so the repeat is recognized and skipped); touchpoints likewise by event id;
* superseded journeys (merged into another by a late touch or an identity merge) are skipped,
  and so is a new version whose line would read exactly like the last one of its journey;
* only touchpoints whose consent allows personalization feed the product and store context;
* a tombstone (a record without value) on the personalization topic means the customer
  withdrew consent (or merged into another): everything kept about them is forgotten;
* the two topics are not ordered with each other, so an update waits until the touchpoint it
  names as its last one has arrived.

Kafka connection (bootstrap, TLS, SASL) from the omnijourney settings (OMNIJOURNEY_* variables).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from aiokafka import AIOKafkaConsumer

from omnijourney.exceptions import InvalidRecord
from omnijourney.kafka_options import client_options
from omnijourney.settings import load_settings
from schemas.contracts import (
    PERSONALIZATION_TOPIC,
    TOUCHPOINTS_TOPIC,
    EnrichedTouchpointRecord,
    JourneyUpdateRecord,
    decode_record,
)

ONLINE: Final = frozenset({"web", "app"})
STORE: Final = "pos"
REMEMBERED: Final = 100_000
"""How many journeys, touchpoints and customers are remembered (the oldest are forgotten)."""


@dataclass(frozen=True, slots=True)
class Touch:
    """What the subscriber keeps of one enriched touchpoint."""

    customer_id: str
    channel: str
    occurred_at: datetime
    product_id: str | None
    store_id: str | None
    personalization: bool


def touch_of(record: EnrichedTouchpointRecord) -> Touch:
    """The facts of an enriched touchpoint (ids from its flattened properties)."""
    product = record.properties.get("product_id")
    store = record.properties.get("store_id")
    return Touch(
        customer_id=record.customer_id,
        channel=record.channel,
        occurred_at=record.occurred_at,
        product_id=product if isinstance(product, str) else None,
        store_id=store if isinstance(store, str) else None,
        personalization=record.consent.personalization,
    )


def _money(update: JourneyUpdateRecord) -> str:
    if update.conversion_value is None:
        return ""
    return f" ({update.conversion_value} {update.conversion_currency})"


def describe(update: JourneyUpdateRecord, product_id: str | None, store_id: str | None) -> str:
    """One human line for a journey update.

    `product_id`: the last product the customer looked at online; `store_id`: the store of
    the journey's last touch. Either is None when unknown or not consented.
    """
    who = f"customer {update.customer_id}"
    path = " -> ".join(update.channel_path)
    if update.status == "converted":
        channel = update.conversion_channel
        where = f"in store {store_id}" if channel == STORE and store_id else f"via {channel}"
        if product_id is not None and channel == STORE:
            return f"{who} browsed product {product_id} online and bought {where}{_money(update)}"
        return f"{who} bought {where}{_money(update)} after {path}"
    if update.status == "expired":
        return f"{who}'s journey {path} ended without a purchase ({update.touch_count} touches)"
    if store_id is not None:
        if product_id is not None:
            return f"{who} browsed product {product_id} online and is now in store {store_id}"
        return f"{who} is now in store {store_id} (journey {path})"
    if product_id is not None and update.last_channel in ONLINE:
        return f"{who} is looking at product {product_id} ({update.last_channel})"
    return (
        f"{who} is on a {path} journey ({update.touch_count} touches, last {update.last_channel})"
    )


class Versions:
    """The highest version seen per id, for the last `limit` ids."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, int] = OrderedDict()

    def fresh(self, ident: str, version: int) -> bool:
        """False for a repeat (or an older version) of ident; True, and remembered, otherwise."""
        known = self._seen.get(ident)
        if known is not None and version <= known:
            return False
        self._seen[ident] = version
        self._seen.move_to_end(ident)
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        return True


def _remember(table: OrderedDict[str, Touch], key: str, touch: Touch) -> None:
    table[key] = touch
    table.move_to_end(key)
    if len(table) > REMEMBERED:
        table.popitem(last=False)


class Personalizer:
    """Turns records of the two topics into lines: no line for repeats or superseded journeys."""

    def __init__(self) -> None:
        self.journeys = Versions()
        self.touchpoints = Versions()
        self.touches: OrderedDict[str, Touch] = OrderedDict()
        """event_id -> its touch."""
        self.browsed: OrderedDict[str, Touch] = OrderedDict()
        """customer_id -> the latest consented online touch that names a product."""
        self.waiting: dict[str, JourneyUpdateRecord] = {}
        """journey_id -> its newest update whose last touchpoint has not arrived yet."""
        self.said: OrderedDict[str, str] = OrderedDict()
        """journey_id -> the last line written for it."""

    def touchpoint(self, record: EnrichedTouchpointRecord) -> list[str]:
        """Remember a touchpoint; the lines of updates that waited for it."""
        if not self.touchpoints.fresh(record.event_id, record.version):
            return []
        touch = touch_of(record)
        _remember(self.touches, record.event_id, touch)
        if touch.personalization and touch.channel in ONLINE and touch.product_id is not None:
            latest = self.browsed.get(touch.customer_id)
            if latest is None or latest.occurred_at <= touch.occurred_at:
                _remember(self.browsed, touch.customer_id, touch)
        ready = [u for u in self.waiting.values() if u.last_event_id == record.event_id]
        for update in ready:
            del self.waiting[update.journey_id]
        return self._say(ready)

    def journey(self, record: JourneyUpdateRecord) -> list[str]:
        """The line of a journey update (none for a repeat or a superseded journey)."""
        if not self.journeys.fresh(record.journey_id, record.version):
            return []
        if record.status == "superseded" or record.superseded_by is not None:
            self.waiting.pop(record.journey_id, None)
            return []
        if record.last_event_id not in self.touches:
            self.waiting[record.journey_id] = record
            return self._overflow()
        self.waiting.pop(record.journey_id, None)
        return self._say([record])

    def handle(self, topic: str, value: bytes) -> list[str]:
        """The lines one message of either topic gives (InvalidRecord for a broken record)."""
        record = decode_record(value)
        if isinstance(record, EnrichedTouchpointRecord):
            return self.touchpoint(record)
        if isinstance(record, JourneyUpdateRecord):
            return self.journey(record)
        return []  # another record type on a shared topic: not ours to describe

    def forget(self, customer_id: str) -> None:
        """The customer withdrew personalization consent: drop what is kept about them."""
        self.browsed.pop(customer_id, None)
        for journey_id, update in list(self.waiting.items()):
            if update.customer_id == customer_id:
                del self.waiting[journey_id]

    def flush(self) -> list[str]:
        """Lines of the updates still waiting for their touchpoint, described without it."""
        lines = self._say(list(self.waiting.values()))
        self.waiting.clear()
        return lines

    def _overflow(self) -> list[str]:
        # A touchpoint that never comes (its topic is behind or trimmed) must not hold memory.
        if len(self.waiting) <= REMEMBERED:
            return []
        oldest = next(iter(self.waiting))
        return self._say([self.waiting.pop(oldest)])

    def _say(self, updates: list[JourneyUpdateRecord]) -> list[str]:
        # A new version that reads like the last line of its journey (a session or a late
        # touch changed, nothing a reader sees) adds nothing.
        lines = []
        for update in updates:
            line = self._line(update)
            if self.said.get(update.journey_id) != line:
                lines.append(line)
                self.said[update.journey_id] = line
                self.said.move_to_end(update.journey_id)
                if len(self.said) > REMEMBERED:
                    self.said.popitem(last=False)
        return lines

    def _line(self, update: JourneyUpdateRecord) -> str:
        last = self.touches.get(update.last_event_id)
        store = None
        if last is not None and last.channel == STORE and last.personalization:
            store = last.store_id
        browsed = self.browsed.get(update.customer_id)
        return describe(update, browsed.product_id if browsed else None, store)


async def follow(
    topics: Sequence[str],
    *,
    from_beginning: bool,
    max_messages: int | None,
    out: Callable[[str], None] = print,
    connection: dict[str, object] | None = None,
) -> int:
    """Consume the topics and write a line per journey change; the messages read."""
    options = connection if connection is not None else client_options(load_settings().kafka)
    consumer = AIOKafkaConsumer(
        *topics,
        **options,
        group_id=None,  # every partition, no committed position: an example, not a service
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    personalizer = Personalizer()
    read = 0
    await consumer.start()
    try:
        while max_messages is None or read < max_messages:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for message in (m for records in batches.values() for m in records):
                read += 1
                if message.value is None and message.key is not None:
                    personalizer.forget(message.key.decode())  # a tombstone: consent withdrawn
                    continue
                try:
                    lines = personalizer.handle(message.topic, message.value or b"")
                except InvalidRecord as exc:
                    print(f"skipped {message.topic}@{message.offset}: {exc}", file=sys.stderr)
                    lines = []
                for line in lines:
                    out(line)
                if max_messages is not None and read >= max_messages:
                    break
    finally:
        await consumer.stop()
        for line in personalizer.flush():
            out(line)
    return read


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and follow the topics until Ctrl-C (or --max-messages)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-beginning", action="store_true", help="read the topics' history")
    parser.add_argument("--max-messages", type=int, default=None, help="stop after N messages")
    parser.add_argument("--updates-topic", default=PERSONALIZATION_TOPIC)
    parser.add_argument("--touchpoints-topic", default=TOUCHPOINTS_TOPIC)
    args = parser.parse_args(argv)
    if args.max_messages is not None and args.max_messages < 1:
        parser.error("--max-messages must be at least 1")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            follow(
                [args.touchpoints_topic, args.updates_topic],
                from_beginning=args.from_beginning,
                max_messages=args.max_messages,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
