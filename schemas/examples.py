"""One valid producer event per (channel, type): for docs, exported schemas, tests and benches.

Synthetic data only: emails at example.com, phone numbers from the 555-01xx fiction range.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any, Final

_WEB_IDS: Final = [{"kind": "anonymous_id", "value": "ajs-7f3c9b2e-41d8-4c55-9a0e-1d2f3a4b5c6d"}]
_APP_IDS: Final = [{"kind": "device_id", "value": "b7e15163-2a1f-4c1e-8f0b-3a9d7c6e5f41"}]
_MONEY: Final = {"amount": "49.90", "currency": "EUR"}
_LINES: Final = [
    {
        "product_id": "P-1001",
        "sku": "SKU-1001-M",
        "name": "Trail running shoe",
        "category": "shoes",
        "quantity": 1,
        "unit_price": {"amount": "39.90", "currency": "EUR"},
    },
    {
        "product_id": "P-2002",
        "name": "Running socks",
        "quantity": 2,
        "unit_price": {"amount": "5.00", "currency": "EUR"},
    },
]
_PRODUCT: Final = {
    "product_id": "P-1001",
    "name": "Trail running shoe",
    "category": "shoes",
    "brand": "Northpeak",
    "price": {"amount": "39.90", "currency": "EUR"},
}

_EXAMPLES: Final[list[dict[str, Any]]] = [
    {
        "channel": "web",
        "type": "page_view",
        "identities": _WEB_IDS,
        "properties": {
            "url": "https://shop.example.com/running?utm_source=newsletter",
            "referrer": "https://www.example.org/",
            "page_title": "Running | Example Shop",
            "utm": {"source": "newsletter", "medium": "email", "campaign": "spring-run"},
        },
    },
    {
        "channel": "web",
        "type": "product_view",
        "identities": _WEB_IDS,
        "properties": {"url": "https://shop.example.com/p/P-1001", "product": _PRODUCT},
    },
    {
        "channel": "web",
        "type": "search",
        "identities": _WEB_IDS,
        "properties": {"query": "trail shoes size 42", "results": 17},
    },
    {
        "channel": "web",
        "type": "add_to_cart",
        "identities": _WEB_IDS,
        "properties": {"product": _PRODUCT, "quantity": 1, "cart_id": "C-88"},
    },
    {
        "channel": "web",
        "type": "checkout",
        "identities": _WEB_IDS,
        "properties": {"cart_id": "C-88", "step": 1, "lines": _LINES, "total": _MONEY},
    },
    {
        "channel": "web",
        "type": "purchase",
        "identities": [*_WEB_IDS, {"kind": "customer_id", "value": "CUST-000123"}],
        "properties": {
            "order_id": "W-2024-000042",
            "lines": _LINES,
            "total": _MONEY,
            "tax": {"amount": "7.97", "currency": "EUR"},
            "shipping": {"amount": "0.00", "currency": "EUR"},
            "payment_method": "card",
        },
    },
    {
        "channel": "web",
        "type": "login",
        "identities": [
            *_WEB_IDS,
            {"kind": "customer_id", "value": "CUST-000123"},
            {"kind": "email", "value": " Jane.Roe@Example.com "},
        ],
        "properties": {"method": "password"},
    },
    {
        "channel": "app",
        "type": "screen_view",
        "identities": _APP_IDS,
        "properties": {"screen_name": "Home", "app_version": "5.2.0", "os": "ios"},
    },
    {
        "channel": "app",
        "type": "product_view",
        "identities": _APP_IDS,
        "properties": {"product": _PRODUCT, "os": "android"},
    },
    {
        "channel": "app",
        "type": "add_to_cart",
        "identities": _APP_IDS,
        "properties": {"product": _PRODUCT, "quantity": 2},
    },
    {
        "channel": "app",
        "type": "purchase",
        "identities": [*_APP_IDS, {"kind": "customer_id", "value": "CUST-000123"}],
        "properties": {"order_id": "A-2024-000007", "lines": _LINES, "total": _MONEY},
    },
    {
        "channel": "app",
        "type": "push_open",
        "identities": _APP_IDS,
        "properties": {"campaign_id": "CMP-spring-run", "deep_link": "shop://p/P-1001"},
    },
    {
        "channel": "app",
        "type": "login",
        "identities": [*_APP_IDS, {"kind": "customer_id", "value": "CUST-000123"}],
    },
    {
        "channel": "pos",
        "type": "store_visit",
        "identities": [{"kind": "loyalty_id", "value": "LOY-4410-2231"}],
        "properties": {"store_id": "S-017", "detected_by": "app_geofence"},
    },
    {
        "channel": "pos",
        "type": "purchase",
        "identities": [
            {"kind": "loyalty_id", "value": "LOY-4410-2231"},
            {"kind": "email", "value": "jane.roe@example.com"},
        ],
        "properties": {
            "store_id": "S-017",
            "till_id": "T-03",
            "receipt_id": "R-017-03-000981",
            "lines": _LINES,
            "total": _MONEY,
            "payment_method": "card",
        },
    },
    {
        "channel": "pos",
        "type": "return",
        "identities": [{"kind": "loyalty_id", "value": "LOY-4410-2231"}],
        "properties": {
            "store_id": "S-017",
            "till_id": "T-01",
            "receipt_id": "R-017-01-000122",
            "original_order_id": "W-2024-000042",
            "lines": [_LINES[1]],
            "total": {"amount": "10.00", "currency": "EUR"},
            "reason": "wrong_size",
        },
    },
    {
        "channel": "pos",
        "type": "loyalty_scan",
        "identities": [{"kind": "loyalty_id", "value": "LOY-4410-2231"}],
        "properties": {"store_id": "S-017", "till_id": "T-03"},
    },
    {
        "channel": "callcenter",
        "type": "call_started",
        "identities": [{"kind": "phone", "value": "+1 202-555-0143"}],
        "properties": {"call_id": "CALL-77812", "queue": "orders", "reason": "order_status"},
    },
    {
        "channel": "callcenter",
        "type": "call_ended",
        "identities": [
            {"kind": "phone", "value": "(202) 555-0143"},
            {"kind": "customer_id", "value": "CUST-000123"},
        ],
        "properties": {
            "call_id": "CALL-77812",
            "reason": "order_status",
            "order_id": "W-2024-000042",
            "outcome": "resolved",
            "duration_s": 245,
        },
    },
    {
        "channel": "email",
        "type": "sent",
        "identities": [{"kind": "email", "value": "jane.roe@example.com"}],
        "properties": {"campaign_id": "CMP-spring-run", "message_id": "M-1"},
    },
    {
        "channel": "email",
        "type": "delivered",
        "identities": [{"kind": "email", "value": "jane.roe@example.com"}],
        "properties": {"campaign_id": "CMP-spring-run", "message_id": "M-1"},
    },
    {
        "channel": "email",
        "type": "open",
        "identities": [{"kind": "customer_id", "value": "CUST-000123"}],
        "properties": {"campaign_id": "CMP-spring-run", "message_id": "M-1"},
    },
    {
        "channel": "email",
        "type": "click",
        "identities": [{"kind": "customer_id", "value": "CUST-000123"}],
        "properties": {
            "campaign_id": "CMP-spring-run",
            "message_id": "M-1",
            "url": "https://shop.example.com/running?utm_source=newsletter",
        },
    },
    {
        "channel": "sms",
        "type": "sent",
        "identities": [{"kind": "phone", "value": "+12025550143"}],
        "properties": {"campaign_id": "CMP-flash-sale"},
    },
    {
        "channel": "sms",
        "type": "delivered",
        "identities": [{"kind": "phone", "value": "+12025550143"}],
        "properties": {"campaign_id": "CMP-flash-sale"},
    },
    {
        "channel": "sms",
        "type": "click",
        "identities": [{"kind": "phone", "value": "+12025550143"}],
        "properties": {"campaign_id": "CMP-flash-sale", "url": "https://ex.example.com/s/x1"},
    },
    {
        "channel": "crm",
        "type": "customer_update",
        "identities": [
            {"kind": "customer_id", "value": "CUST-000123"},
            {"kind": "loyalty_id", "value": "LOY-4410-2231"},
            {"kind": "email", "value": "jane.roe@example.com"},
            {"kind": "phone", "value": "+1 202 555 0143"},
        ],
        "properties": {"action": "created", "loyalty_tier": "gold", "home_store_id": "S-017"},
    },
]


def examples() -> list[dict[str, Any]]:
    """A fresh copy of one valid producer event per (channel, type), as JSON-ready dicts."""
    out = []
    for number, example in enumerate(_EXAMPLES, start=1):
        event = deepcopy(example)
        event = {
            "event_id": f"0b8f3c2e-7a51-4d0e-9c1b-{number:012d}",
            "schema_version": 1,
            **event,
            "occurred_at": "2024-05-01T10:00:00+02:00",
            "sent_at": "2024-05-01T10:00:05+02:00",
            "consent": {"analytics": True, "personalization": True, "marketing": False},
        }
        out.append(event)
    return out
