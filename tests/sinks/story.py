"""A scripted omnichannel story as the stitching core publishes it, with hand-computed answers.

Every record is shaped exactly as `to_dict()` of `streams.core.records` writes it (same keys,
same order, ISO times with microseconds and Z, money as decimal text). Synthetic ids only.

Six customers, in March 2026:

* Ann researches on the web as an anonymous cookie (customer COOKIE) and in the app on a
  device (customer DEVICE); the device merges into the cookie, then the cookie into Ann
  (ANN, the oldest id). Her add_to_cart is in the app and she buys in a store two days later.
  The cookie's touches stay written under COOKIE (their journey was sealed before the merge);
  the device's touch is re-published under ANN with a higher version.
* Bob browses, adds to cart and buys in the app, then calls the call center.
* Cid buys in a store only; his attempt to claim Ann's customer_id is rejected.
* Dee browses on the web and in the app and never buys.
* Eve views a product on the web, buys in a store 10 days later, then buys on the web.
* Fay views, adds to cart and buys on the web the same day; an email click arrives late.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from schemas.deadletter import DeadLetter, encode_dead_letter, triage
from tests.schemas.support import HASHER

ANN: Final = "c0001ann"
BOB: Final = "c0002bob"
CID: Final = "c0003cid"
DEE: Final = "c0004dee"
COOKIE: Final = "c0005cookie"
EVE: Final = "c0006eve"
FAY: Final = "c0007fay"
DEVICE: Final = "c0009device"
ANN_EMAIL_HASH: Final = hashlib.sha256(b"synthetic-ann").hexdigest()


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in March 2026 (UTC)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """As the core writes times."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _head(record_type: str) -> dict[str, Any]:
    return {"record_type": record_type, "schema_version": 1}


def touch(
    event_id: str,
    channel: str,
    type_: str,
    when: datetime,
    identities: list[tuple[str, str]],
    *,
    customer: str,
    journey: str | None,
    position: int | None,
    previous: str | None,
    version: int,
    session: str | None = None,
    value: str | None = None,
    late: bool = False,
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An enriched_touchpoint record."""
    data = _head("enriched_touchpoint")
    data.update(
        event_id=event_id,
        channel=channel,
        type=type_,
        occurred_at=iso(when),
        received_at=iso(when + timedelta(seconds=2)),
        identities=[{"kind": kind, "value": val} for kind, val in identities],
        consent={"analytics": True, "personalization": False, "marketing": False},
        value=value,
        currency="EUR" if value is not None else None,
        properties=properties or {},
    )
    data.update(
        customer_id=customer,
        session_id=session if session is not None else (None if late else f"s-{journey}"),
        journey_id=journey,
        position=position,
        previous_channel=previous,
        late=late,
        version=version,
    )
    return data


def session(
    session_id: str,
    customer: str,
    journey: str,
    channel: str,
    events: list[tuple[str, datetime]],
    version: int,
    supersedes: tuple[str, ...] = (),
    superseded_by: str | None = None,
) -> dict[str, Any]:
    """A session_update record."""
    data = _head("session_update")
    data.update(
        session_id=session_id,
        customer_id=customer,
        journey_id=journey,
        channel=channel,
        started_at=iso(events[0][1]),
        ended_at=iso(events[-1][1]),
        touch_count=len(events),
        first_event_id=events[0][0],
        last_event_id=events[-1][0],
        version=version,
        supersedes=list(supersedes),
        superseded_by=superseded_by,
    )
    return data


def journey(
    journey_id: str,
    customer: str,
    status: str,
    events: list[tuple[str, str, str, datetime]],
    version: int,
    *,
    final: bool = False,
    conversion: tuple[str, str, str | None] | None = None,
    supersedes: tuple[str, ...] = (),
    superseded_by: str | None = None,
    marketing: bool = False,
) -> dict[str, Any]:
    """A journey_update of touches (event_id, channel, type, time); conversion (id, type, value)."""
    path: list[str] = []
    switches = []
    for event_id, channel, _, when in events:
        if not path or path[-1] != channel:
            if path:
                switches.append(
                    {
                        "from_channel": path[-1],
                        "to_channel": channel,
                        "at": iso(when),
                        "event_id": event_id,
                    }
                )
            path.append(channel)
    converted = None
    if conversion is not None:
        converted = next(e for e in events if e[0] == conversion[0])
    data = _head("journey_update")
    data.update(
        journey_id=journey_id,
        customer_id=customer,
        status=status,
        final=final,
        started_at=iso(events[0][3]),
        ended_at=iso(events[-1][3]),
        first_channel=events[0][1],
        last_channel=events[-1][1],
        first_event_id=events[0][0],
        last_event_id=events[-1][0],
        touch_count=len(events),
        session_ids=[f"s-{journey_id}"],
        channel_path=path,
        switch_count=len(switches),
        switches=switches,
        conversion_event_id=conversion and conversion[0],
        conversion_type=conversion and conversion[1],
        conversion_channel=converted and converted[1],
        converted_at=converted and iso(converted[3]),
        conversion_value=conversion and conversion[2],
        conversion_currency=conversion and ("EUR" if conversion[2] is not None else None),
        version=version,
        supersedes=list(supersedes),
        superseded_by=superseded_by,
        consent={"analytics": True, "personalization": False, "marketing": marketing},
    )
    return data


def link(customer: str, kind: str, value: str, event_id: str) -> dict[str, Any]:
    """An identity_link record."""
    data = _head("identity_link")
    data.update(
        customer_id=customer, identifier_kind=kind, identifier_value=value, event_id=event_id
    )
    return data


def merge(survivor: str, alias: str, kind: str, value: str, event_id: str) -> dict[str, Any]:
    """A merge record."""
    data = _head("merge")
    data.update(
        survivor_id=survivor,
        alias_id=alias,
        identifier_kind=kind,
        identifier_value=value,
        rule=f"link:{kind}",
        event_id=event_id,
    )
    return data


def rejection(
    customer: str, kind: str, value: str, rule: str, event_id: str, other: str | None
) -> dict[str, Any]:
    """A link_rejection record."""
    data = _head("link_rejection")
    data.update(
        customer_id=customer,
        identifier_kind=kind,
        identifier_value=value,
        rule=rule,
        event_id=event_id,
        other_customer_id=other,
    )
    return data


# ---------------------------------------------------------------- the story

COOKIE_IDS = [("anonymous_id", "ck-1")]
DEVICE_IDS = [("device_id", "dv-1")]
ANN_IDS = [("customer_id", "ann"), ("email_hash", ANN_EMAIL_HASH)]

A1 = ("a1", "web", "page_view", at(2, 10, 0))
A2 = ("a2", "web", "product_view", at(2, 10, 5))
A3 = ("a3", "app", "product_view", at(2, 10, 20))
A4 = ("a4", "app", "add_to_cart", at(2, 11, 0))
A5 = ("a5", "pos", "purchase", at(4, 15, 0))
B1 = ("b1", "app", "product_view", at(3, 9, 0))
B2 = ("b2", "app", "add_to_cart", at(3, 9, 10))
B3 = ("b3", "app", "purchase", at(3, 9, 30))
B4 = ("b4", "callcenter", "call", at(3, 14, 0))
C1 = ("c1", "pos", "purchase", at(5, 12, 0))
D1 = ("d1", "web", "page_view", at(6, 8, 0))
D2 = ("d2", "web", "product_view", at(6, 8, 3))
D3 = ("d3", "app", "page_view", at(7, 20, 0))
E1 = ("e1", "web", "product_view", at(1, 10, 0))
E2 = ("e2", "pos", "purchase", at(11, 10, 0))
E3 = ("e3", "web", "purchase", at(11, 20, 0))
F1 = ("f1", "web", "product_view", at(8, 10, 0))
F2 = ("f2", "web", "add_to_cart", at(8, 10, 30))
F3 = ("f3", "web", "purchase", at(8, 12, 0))
F4 = ("f4", "email", "click", at(7, 9, 0))


def story() -> list[dict[str, Any]]:
    """Every public record of the story, in publication order."""
    r: list[dict[str, Any]] = []
    # Ann as a cookie, then as a device, then logged in.
    r += [
        link(COOKIE, "anonymous_id", "ck-1", "a1"),
        touch(*A1, COOKIE_IDS, customer=COOKIE, journey="JA", position=1, previous=None, version=1),
        session("SA1", COOKIE, "JA", "web", [("a1", A1[3])], 1),
        journey("JA", COOKIE, "open", [A1], 1),
        touch(
            *A2,
            COOKIE_IDS,
            customer=COOKIE,
            journey="JA",
            position=2,
            previous="web",
            version=2,
            properties={"product_id": "P-7", "price": 120.0, "in_stock": True, "promo": None},
        ),
        session("SA1", COOKIE, "JA", "web", [("a1", A1[3]), ("a2", A2[3])], 2),
        journey("JA", COOKIE, "open", [A1, A2], 2),
        link(DEVICE, "device_id", "dv-1", "a3"),
        touch(*A3, DEVICE_IDS, customer=DEVICE, journey="JD", position=1, previous=None, version=1),
        session("SD", DEVICE, "JD", "app", [("a3", A3[3])], 1),
        journey("JD", DEVICE, "open", [A3], 1),
        merge(COOKIE, DEVICE, "device_id", "dv-1", "a4"),
        link(ANN, "customer_id", "ann", "a4"),
        link(ANN, "email_hash", ANN_EMAIL_HASH, "a4"),
        merge(ANN, COOKIE, "anonymous_id", "ck-1", "a4"),
        # after the merges: the device's open touch moves into Ann's journey
        touch(
            *A3,
            DEVICE_IDS,
            customer=ANN,
            journey="JA",
            position=3,
            previous="web",
            version=10,
            session="SA2",
        ),
        session("SA2", ANN, "JA", "app", [("a3", A3[3])], 10, supersedes=("SD",)),
        session("SD", ANN, "JD", "app", [("a3", A3[3])], 10, superseded_by="SA2"),
        journey("JA", ANN, "open", [A1, A2, A3], 10, supersedes=("JD",)),
        journey("JD", ANN, "superseded", [A3], 10, superseded_by="JA"),
        touch(
            *A4,
            ANN_IDS + COOKIE_IDS,
            customer=ANN,
            journey="JA",
            position=4,
            previous="app",
            version=11,
            session="SA2",
        ),
        session("SA2", ANN, "JA", "app", [("a3", A3[3]), ("a4", A4[3])], 11),
        journey("JA", ANN, "open", [A1, A2, A3, A4], 11),
        touch(
            *A5,
            ANN_IDS,
            customer=ANN,
            journey="JA",
            position=5,
            previous="app",
            version=12,
            value="120.00",
            session="SA3",
        ),
        session("SA3", ANN, "JA", "pos", [("a5", A5[3])], 12),
        journey(
            "JA",
            ANN,
            "converted",
            [A1, A2, A3, A4, A5],
            12,
            conversion=("a5", "purchase", "120.00"),
        ),
        journey(
            "JA",
            ANN,
            "converted",
            [A1, A2, A3, A4, A5],
            13,
            final=True,
            conversion=("a5", "purchase", "120.00"),
        ),
    ]
    # Bob in the app, then on the phone.
    bob = [("customer_id", "bob")]
    r += [
        link(BOB, "customer_id", "bob", "b1"),
        touch(*B1, bob, customer=BOB, journey="JB", position=1, previous=None, version=1),
        touch(*B2, bob, customer=BOB, journey="JB", position=2, previous="app", version=2),
        touch(
            *B3,
            bob,
            customer=BOB,
            journey="JB",
            position=3,
            previous="app",
            version=3,
            value="50.00",
        ),
        session("SB", BOB, "JB", "app", [("b1", B1[3]), ("b2", B2[3]), ("b3", B3[3])], 3),
        journey("JB", BOB, "converted", [B1, B2, B3], 3, conversion=("b3", "purchase", "50.00")),
        touch(*B4, bob, customer=BOB, journey="JB2", position=1, previous=None, version=4),
        journey("JB2", BOB, "open", [B4], 4),
    ]
    # Cid in a store; his claim on Ann's customer id is refused.
    cid = [("loyalty_id", "L-3")]
    r += [
        link(CID, "loyalty_id", "L-3", "c1"),
        touch(
            *C1,
            cid,
            customer=CID,
            journey="JC",
            position=1,
            previous=None,
            version=1,
            value="80.00",
        ),
        journey("JC", CID, "converted", [C1], 1, conversion=("c1", "purchase", "80.00")),
        rejection(CID, "customer_id", "ann", "limit:customer_id", "c1", ANN),
    ]
    # Dee browses; one touch is re-placed (new session) at a higher version.
    dee = [("anonymous_id", "ck-4")]
    r += [
        touch(*D1, dee, customer=DEE, journey="JDee", position=1, previous=None, version=1),
        touch(*D2, dee, customer=DEE, journey="JDee", position=2, previous="web", version=2),
        touch(
            *D2,
            dee,
            customer=DEE,
            journey="JDee",
            position=2,
            previous="web",
            version=3,
            session="s-JDee-2",
        ),
        touch(*D3, dee, customer=DEE, journey="JDee", position=3, previous="web", version=4),
        journey("JDee", DEE, "open", [D1, D2, D3], 4),
        journey("JDee", DEE, "expired", [D1, D2, D3], 5, final=True),
    ]
    # Eve: web research, a store purchase ten days later, then a web purchase.
    eve = [("loyalty_id", "L-6")]
    r += [
        touch(*E1, eve, customer=EVE, journey="JE1", position=1, previous=None, version=1),
        journey("JE1", EVE, "expired", [E1], 2),
        touch(
            *E2,
            eve,
            customer=EVE,
            journey="JE2",
            position=1,
            previous=None,
            version=2,
            value="40.00",
        ),
        journey("JE2", EVE, "converted", [E2], 2, conversion=("e2", "purchase", "40.00")),
        touch(
            *E3,
            eve,
            customer=EVE,
            journey="JE3",
            position=1,
            previous=None,
            version=3,
            value="20.00",
        ),
        journey("JE3", EVE, "converted", [E3], 3, conversion=("e3", "purchase", "20.00")),
    ]
    # Fay on the web; an email click arrives beyond the allowed lateness.
    fay = [("email_hash", hashlib.sha256(b"synthetic-fay").hexdigest())]
    r += [
        touch(*F1, fay, customer=FAY, journey="JF", position=1, previous=None, version=1),
        touch(*F2, fay, customer=FAY, journey="JF", position=2, previous="web", version=2),
        touch(
            *F3,
            fay,
            customer=FAY,
            journey="JF",
            position=3,
            previous="web",
            version=3,
            value="30.00",
        ),
        journey(
            "JF",
            FAY,
            "converted",
            [F1, F2, F3],
            3,
            conversion=("f3", "purchase", "30.00"),
            marketing=True,  # Fay's latest consent allows marketing
        ),
        touch(
            *F4, fay, customer=FAY, journey=None, position=None, previous=None, version=4, late=True
        ),
    ]
    # A visitor who refused analytics: counted, never linked, no identifier (decision 0016).
    r.append(anonymous("z1", "web", "product_view", at(3, 11), {"product_id": "P-7"}))
    return r


def anonymous(
    event_id: str, channel: str, type_: str, when: datetime, properties: dict[str, Any]
) -> dict[str, Any]:
    """An anonymous_touchpoint record (no analytics consent)."""
    data = _head("anonymous_touchpoint")
    data.update(
        event_id=event_id,
        channel=channel,
        type=type_,
        occurred_at=iso(when),
        received_at=iso(when + timedelta(seconds=2)),
        consent={"analytics": False, "personalization": False, "marketing": True},
        value=None,
        currency=None,
        properties=properties,
    )
    return data


def broken() -> list[tuple[str, bytes]]:
    """Messages the sink must turn into dead letters: (record type of the topic, bytes)."""
    missing = touch(
        *C1,
        [("loyalty_id", "L-3")],
        customer=CID,
        journey="JC",
        position=1,
        previous=None,
        version=1,
    )
    del missing["customer_id"]
    return [
        ("enriched_touchpoint", b"{not json"),
        ("enriched_touchpoint", orjson.dumps(missing)),
    ]


def ingest_dead_letter() -> bytes:
    """A dead letter of the ingest stage, as it travels on touchpoints.deadletter."""
    outcome = triage(b'{"channel": "web"}', received_at=at(9, 12), hasher=HASHER)
    assert isinstance(outcome, DeadLetter)
    return encode_dead_letter(outcome)
