"""An example store till (POS): store visits and purchases, sent at once or uploaded nightly.

    PYTHONPATH=. python -m examples.till_producer --store S-017 --till T-03 \\
        --line P-1001:39.90 --line P-2002:5.00x2 [--loyalty LOY-4410-2231] [--email ADDRESS] \\
        [--personalization-consent] [--currency EUR] [--spool FILE]
    PYTHONPATH=. python -m examples.till_producer --upload FILE

A sale is a `pos/purchase` touchpoint (basket lines, total, receipt id, payment method),
preceded by a `pos/store_visit` when the till knows who is shopping (a loyalty card, or an
e-receipt address). A cash sale without either is still sent, under an id made from the
receipt (`anonymous_id rcpt-<receipt>`), as the retailer's own systems would record it.

The till is the edge: `schemas.emitter.Emitter` validates every event and replaces a clear
e-receipt address by its keyed hash before anything is written, to Kafka or to disk.

Tills that are offline during the day write each sale to a spool file (`--spool`: one JSON
line per validated, hashed event, without `sent_at`) and upload the whole file at night
(`--upload`): every event then carries the upload time as `sent_at`, so the edge places it at
the time of the sale (`occurred_at = received_at - (sent_at - occurred_at)`) and the pipeline
stitches it into the journeys it belongs to. The file is emptied only once Kafka acknowledged
every event; a failed upload is simply repeated (event ids make the repeat harmless).

Kafka connection and the PII hash key come from the omnijourney settings (OMNIJOURNEY_*).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from omnijourney.exceptions import OmnijourneyError
from omnijourney.kafka_options import client_options
from omnijourney.settings import Settings, load_settings
from schemas.emitter import Emitter, send
from schemas.keystore import hasher_from_settings
from schemas.topics import Record
from schemas.touchpoint import input_payload

Clock = Callable[[], datetime]
Event = dict[str, Any]


def utc_now() -> datetime:
    """The till's clock."""
    return datetime.now(UTC)


def basket_line(text: str, currency: str) -> Event:
    """A basket line from `PRODUCT:PRICE` or `PRODUCT:PRICExQUANTITY` (e.g. `P-2002:5.00x2`)."""
    product, sep, rest = text.partition(":")
    price, _, quantity = rest.partition("x")
    try:
        unit, count = Decimal(price), Decimal(quantity or "1")
    except InvalidOperation:
        unit = count = Decimal(-1)
    if not sep or not product or unit < 0 or count <= 0:
        raise ValueError(f"basket line {text!r}: expected PRODUCT:PRICE or PRODUCT:PRICExQUANTITY")
    return {
        "product_id": product,
        "quantity": str(count),
        "unit_price": {"amount": str(unit), "currency": currency},
    }


def basket_total(lines: Sequence[Event]) -> Decimal:
    """The sum of quantity x unit price over the lines."""
    return sum(
        (Decimal(line["quantity"]) * Decimal(line["unit_price"]["amount"]) for line in lines),
        Decimal(0),
    )


@dataclass(frozen=True, slots=True)
class Shopper:
    """What the till learns about the person paying (all optional)."""

    loyalty_id: str | None = None
    email: str | None = None
    """An e-receipt address, in clear: the Emitter hashes it before it leaves the till."""
    personalization: bool | None = None
    """The loyalty member's consent to personalization, when the till knows it."""

    def identities(self) -> list[Event]:
        """The shopper's identifiers as a producer sends them."""
        ids = []
        if self.loyalty_id:
            ids.append({"kind": "loyalty_id", "value": self.loyalty_id})
        if self.email:
            ids.append({"kind": "email", "value": self.email})
        return ids


@dataclass(frozen=True, slots=True)
class Till:
    """One till of one store; builds the producer events of a sale (pure: time is passed in)."""

    store_id: str
    till_id: str
    currency: str = "EUR"

    def _event(self, type_: str, shopper: Shopper, ids: list[Event], at: datetime) -> Event:
        event: Event = {
            "event_id": str(uuid.uuid4()),
            "channel": "pos",
            "type": type_,
            "occurred_at": at.isoformat(),
            "identities": ids,
            "properties": {"store_id": self.store_id},
        }
        if shopper.personalization is not None:
            event["consent"] = {"personalization": shopper.personalization}
        return event

    def store_visit(self, shopper: Shopper, at: datetime) -> Event | None:
        """The visit of a known shopper (None when the till cannot say who it is)."""
        ids = shopper.identities()
        if not ids:
            return None
        event = self._event("store_visit", shopper, ids, at)
        event["properties"]["detected_by"] = "till"
        return event

    def purchase(
        self,
        shopper: Shopper,
        lines: Sequence[Event],
        at: datetime,
        *,
        receipt_id: str,
        payment_method: str = "card",
    ) -> Event:
        """The receipt of a sale."""
        ids = shopper.identities() or [{"kind": "anonymous_id", "value": f"rcpt-{receipt_id}"}]
        event = self._event("purchase", shopper, ids, at)
        event["properties"].update(
            till_id=self.till_id,
            receipt_id=receipt_id,
            lines=list(lines),
            total={"amount": str(basket_total(lines)), "currency": self.currency},
            payment_method=payment_method,
        )
        return event

    def sale(
        self, shopper: Shopper, lines: Sequence[Event], at: datetime, *, receipt_id: str
    ) -> list[Event]:
        """A sale: the visit (a few minutes before paying, when known), then the purchase."""
        visit = self.store_visit(shopper, at - timedelta(minutes=5))
        purchase = self.purchase(shopper, lines, at, receipt_id=receipt_id)
        return [purchase] if visit is None else [visit, purchase]


def spool_line(emitter: Emitter, event: Event, now: datetime) -> bytes:
    """One validated, hashed event as a spool line (no `sent_at`: the upload stamps it)."""
    payload = input_payload(emitter.touchpoint(event, now=now))
    payload.pop("sent_at", None)
    return orjson.dumps(payload) + b"\n"


def spool(path: Path, emitter: Emitter, events: Sequence[Event], now: datetime) -> None:
    """Append events to the nightly batch (validated first: a bad sale is refused at once)."""
    lines = [spool_line(emitter, event, now) for event in events]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        out.writelines(lines)


def upload_records(path: Path, emitter: Emitter, now: datetime) -> list[Record]:
    """The Kafka records of a spool file, each stamped with the upload time as `sent_at`."""
    events = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [emitter.record(event, now=now) for event in events]


async def send_batch(producer: AIOKafkaProducer, records: Sequence[Record]) -> None:
    """Send records together and wait until Kafka acknowledged every one."""
    futures = [await producer.send(r.topic, r.value, key=r.key) for r in records]
    await asyncio.gather(*futures)


async def run(settings: Settings, args: argparse.Namespace, clock: Clock = utc_now) -> str:
    """Do what the arguments ask; a summary line."""
    emitter = Emitter(hasher_from_settings(settings))
    now = clock()
    if args.upload is not None:
        records = upload_records(args.upload, emitter, now)
        what = f"{len(records)} events uploaded from {args.upload}"
    else:
        till = Till(args.store, args.till, args.currency)
        lines = [basket_line(text, args.currency) for text in args.line]
        shopper = Shopper(args.loyalty, args.email, True if args.personalization_consent else None)
        receipt = f"R-{args.store}-{args.till}-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:4]}"
        events = till.sale(shopper, lines, now, receipt_id=receipt)
        if args.spool is not None:
            spool(args.spool, emitter, events, now)
            return f"{len(events)} events kept in {args.spool} for the nightly upload"
        records = [emitter.record(event, now=now) for event in events]
        what = f"{len(records)} events sent ({', '.join(e['type'] for e in events)})"
    producer = AIOKafkaProducer(
        **client_options(settings.kafka), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        if args.upload is not None:
            await send_batch(producer, records)
            args.upload.write_bytes(b"")  # only now: every event is acknowledged
        else:
            for record in records:  # a live sale: one by one, each acknowledged
                await send(producer, record)
    finally:
        await producer.stop()
    return what


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of the till."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="S-017", help="store id")
    parser.add_argument("--till", default="T-03", help="till id")
    parser.add_argument("--currency", default="EUR")
    parser.add_argument(
        "--line", action="append", default=[], help="PRODUCT:PRICE[xQUANTITY], repeatable"
    )
    parser.add_argument("--loyalty", help="loyalty card id")
    parser.add_argument("--email", help="e-receipt address (hashed before it leaves the till)")
    parser.add_argument(
        "--personalization-consent",
        action="store_true",
        help="the shopper agreed to personalization (loyalty programme terms)",
    )
    parser.add_argument("--spool", type=Path, help="keep the sale for the nightly batch")
    parser.add_argument("--upload", type=Path, help="send a spool file as the nightly batch")
    args = parser.parse_args(argv)
    if args.upload is None and not args.line:
        parser.error("a sale needs at least one --line (or use --upload FILE)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, record or upload, print what happened."""
    args = parse_args(argv)
    try:
        print(asyncio.run(run(load_settings(), args)))
    except (OmnijourneyError, ValueError, OSError) as exc:
        print(f"till: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
