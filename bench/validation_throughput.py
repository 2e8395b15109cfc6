"""Validation throughput: realistic mixed-channel raw events through parse_touchpoint on one core.

Includes JSON decoding, PII normalization and HMAC hashing, free-text scrubbing and skew
correction: all the edge does per event. Run: `python -m bench.validation_throughput`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pydantic

from bench._machine import describe
from schemas.pii import PiiHasher
from schemas.touchpoint import encode_touchpoint
from schemas.validation import decode_touchpoint, parse_touchpoint

RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MIX = {"web": 55, "app": 20, "pos": 8, "email": 8, "sms": 3, "callcenter": 3, "crm": 3}
PAGES = ["/", "/running", "/p/P-{n}", "/search?q=shoes", "/cart", "/account/orders"]
QUERIES = ["trail shoes", "rain jacket size m", "socks", "gift card", "running watch 42mm"]


class Generator:
    """Synthetic but realistic producer events (example.com emails, 555-01xx phones)."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.serial = 0

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{self.rnd.getrandbits(64):016x}"

    def _address(self) -> str:
        n = self.rnd.randrange(100_000)
        email = f"Customer.{n}@Mail.Example.com"
        return f" {email} " if self.rnd.random() < 0.2 else email.lower()

    def _phone(self) -> str:
        n = self.rnd.randrange(100, 200)
        return self.rnd.choice([f"+1 202-555-0{n}", f"(202) 555-0{n}", f"202555{n:04d}"])

    def _money(self, amount: float) -> dict[str, str]:
        return {"amount": f"{amount:.2f}", "currency": "EUR"}

    def _lines(self) -> list[dict[str, Any]]:
        lines = []
        for _ in range(self.rnd.randint(1, 8)):
            lines.append(
                {
                    "product_id": f"P-{self.rnd.randrange(5000)}",
                    "sku": f"SKU-{self.rnd.randrange(50000)}",
                    "name": "Trail running shoe",
                    "quantity": self.rnd.randint(1, 3),
                    "unit_price": self._money(self.rnd.uniform(2, 150)),
                }
            )
        return lines

    def _basket(self) -> dict[str, Any]:
        lines = self._lines()
        total = sum(float(li["unit_price"]["amount"]) * li["quantity"] for li in lines)
        return {"lines": lines, "total": self._money(total)}

    def event(self) -> dict[str, Any]:
        self.serial += 1
        channel = self.rnd.choices(list(MIX), weights=list(MIX.values()))[0]
        occurred = RECEIVED - timedelta(seconds=self.rnd.randrange(1, 86_400))
        event: dict[str, Any] = {
            "event_id": f"{self.rnd.getrandbits(128):032x}",
            "channel": channel,
            "occurred_at": occurred.isoformat(),
            "consent": {"analytics": True, "marketing": self.rnd.random() < 0.5},
        }
        if self.rnd.random() < 0.7:
            event["sent_at"] = (occurred + timedelta(seconds=self.rnd.randrange(1, 30))).isoformat()
        getattr(self, f"_{channel}")(event)  # one builder per channel
        return event

    def _web(self, event: dict[str, Any]) -> None:
        ids = [{"kind": "anonymous_id", "value": self._id("ajs")}]
        kind = self.rnd.choices(
            ["page_view", "product_view", "search", "add_to_cart", "checkout", "purchase", "login"],
            weights=[50, 20, 10, 8, 4, 3, 5],
        )[0]
        page = self.rnd.choice(PAGES).format(n=self.rnd.randrange(5000))
        props: dict[str, Any] = {"url": f"https://shop.example.com{page}", "page_title": "Shop"}
        if kind == "product_view" or kind == "add_to_cart":
            props["product"] = {"product_id": f"P-{self.rnd.randrange(5000)}", "name": "Shoe"}
        elif kind == "search":
            props["query"] = self.rnd.choice(QUERIES)
        elif kind in ("checkout", "purchase"):
            props |= self._basket()
            if kind == "purchase":
                props["order_id"] = self._id("W")
                ids.append({"kind": "customer_id", "value": self._id("CUST")})
        elif kind == "login":
            ids.append({"kind": "customer_id", "value": self._id("CUST")})
            ids.append({"kind": "email", "value": self._address()})
        event |= {"type": kind, "identities": ids, "properties": props}

    def _app(self, event: dict[str, Any]) -> None:
        ids = [{"kind": "device_id", "value": self._id("dev")}]
        kind = self.rnd.choices(
            ["screen_view", "product_view", "add_to_cart", "purchase", "push_open", "login"],
            weights=[55, 20, 10, 4, 6, 5],
        )[0]
        props: dict[str, Any] = {"app_version": "5.2.0", "os": self.rnd.choice(["ios", "android"])}
        if kind == "screen_view":
            props["screen_name"] = self.rnd.choice(["Home", "Cart", "Search", "Product"])
        elif kind in ("product_view", "add_to_cart"):
            props["product"] = {"product_id": f"P-{self.rnd.randrange(5000)}"}
        elif kind == "purchase":
            props |= self._basket() | {"order_id": self._id("A")}
        elif kind == "push_open":
            props["campaign_id"] = "CMP-spring"
        elif kind == "login":
            ids.append({"kind": "customer_id", "value": self._id("CUST")})
        event |= {"type": kind, "identities": ids, "properties": props}

    def _pos(self, event: dict[str, Any]) -> None:
        ids = [{"kind": "loyalty_id", "value": self._id("LOY")}]
        if self.rnd.random() < 0.3:
            ids.append({"kind": "email", "value": self._address()})
        kind = self.rnd.choices(
            ["purchase", "return", "loyalty_scan", "store_visit"], [70, 5, 20, 5]
        )[0]
        props: dict[str, Any] = {"store_id": f"S-{self.rnd.randrange(300):03d}", "till_id": "T-02"}
        if kind in ("purchase", "return"):
            props |= self._basket() | {"receipt_id": self._id("R")}
        event |= {"type": kind, "identities": ids, "properties": props}

    def _campaign(self, event: dict[str, Any], kind: str, clear: dict[str, str]) -> None:
        props: dict[str, Any] = {"campaign_id": "CMP-spring", "message_id": self._id("M")}
        if kind == "click":
            props["url"] = "https://shop.example.com/running?utm_source=crm"
        event |= {"type": kind, "identities": [clear], "properties": props}

    def _email(self, event: dict[str, Any]) -> None:
        kind = self.rnd.choice(["sent", "delivered", "open", "click"])
        self._campaign(event, kind, {"kind": "email", "value": self._address()})

    def _sms(self, event: dict[str, Any]) -> None:
        kind = self.rnd.choice(["sent", "delivered", "click"])
        self._campaign(event, kind, {"kind": "phone", "value": self._phone()})

    def _callcenter(self, event: dict[str, Any]) -> None:
        kind = self.rnd.choice(["call_started", "call_ended"])
        props: dict[str, Any] = {"call_id": self._id("CALL"), "reason": "order_status"}
        if kind == "call_ended":
            props |= {"outcome": "resolved", "duration_s": self.rnd.randrange(30, 900)}
        ids = [{"kind": "phone", "value": self._phone()}]
        event |= {"type": kind, "identities": ids, "properties": props}

    def _crm(self, event: dict[str, Any]) -> None:
        ids = [
            {"kind": "customer_id", "value": self._id("CUST")},
            {"kind": "loyalty_id", "value": self._id("LOY")},
            {"kind": "email", "value": self._address()},
            {"kind": "phone", "value": self._phone()},
        ]
        event |= {"type": "customer_update", "identities": ids, "properties": {"action": "updated"}}


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned"


def main(argv: list[str] | None = None) -> None:
    """Generate events, validate them several rounds, print events/s and the machine."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    pinned = _pin_one_core()
    generator = Generator(seed=42)
    raws = [orjson.dumps(generator.event()) for _ in range(args.events)]
    hasher = PiiHasher(b"bench-key-not-secret-0123456789abcdef", "US")
    channels = Counter(orjson.loads(raw)["channel"] for raw in raws)
    clear_pii = sum(raw.count(b'"kind":"email"') + raw.count(b'"kind":"phone"') for raw in raws)

    for raw in raws[:1000]:  # warm up caches (phone metadata, pydantic)
        parse_touchpoint(raw, received_at=RECEIVED, hasher=hasher)
    rates, validated = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        validated = [parse_touchpoint(raw, received_at=RECEIVED, hasher=hasher) for raw in raws]
        rates.append(len(raws) / (time.perf_counter() - start))
    encoded = [encode_touchpoint(tp) for tp in validated]
    start = time.perf_counter()
    for raw in encoded:
        decode_touchpoint(raw)
    decode_rate = len(encoded) / (time.perf_counter() - start)

    size = statistics.mean(len(raw) for raw in raws)
    print(f"validation throughput ({describe()}; {pinned}; pydantic {pydantic.VERSION})")
    print(
        f"  {len(raws)} events, mean {size:.0f} B, mix "
        + ", ".join(f"{c} {n * 100 / len(raws):.0f}%" for c, n in channels.most_common())
        + f"; {clear_pii} clear emails/phones hashed per round"
    )
    print(
        f"  parse_touchpoint: median {statistics.median(rates):,.0f} events/s, "
        f"best {max(rates):,.0f} events/s over {args.rounds} rounds "
        f"({1e6 / statistics.median(rates):.1f} us/event)"
    )
    print(f"  decode_touchpoint (validated topic, no hashing): {decode_rate:,.0f} events/s")


if __name__ == "__main__":
    main()
