"""Seeded synthetic people and their touches, with or without identity conflicts."""

from __future__ import annotations

import random
from datetime import timedelta

from streams.core.model import Identifier, Touch
from tests.core.support import T0, fake_hash

CHANNEL_OF = {
    "anonymous_id": "web",
    "device_id": "app",
    "customer_id": "web",
    "loyalty_id": "pos",
    "email_hash": "email",
    "phone_hash": "callcenter",
}
TYPES = ("page_view", "product_view", "add_to_cart", "purchase", "call_started", "click")


def people(rng: random.Random, count: int, conflicts: bool) -> list[list[Identifier]]:
    """Identifier sets of `count` people; with conflicts, households share some of them."""
    persons: list[list[Identifier]] = []
    for person in range(count):
        ids = [Identifier("anonymous_id", f"a{person}.{i}") for i in range(rng.randint(1, 3))]
        ids += [Identifier("device_id", f"d{person}.{i}") for i in range(rng.randint(0, 2))]
        if rng.random() < 0.6:
            ids.append(Identifier("customer_id", f"C{person}"))
        ids += [Identifier("loyalty_id", f"L{person}.{i}") for i in range(rng.randint(0, 2))]
        ids += [
            Identifier("email_hash", fake_hash(f"e{person}.{i}")) for i in range(rng.randint(0, 2))
        ]
        if rng.random() < 0.4:
            ids.append(Identifier("phone_hash", fake_hash(f"p{person}")))
        persons.append(ids)
    if conflicts:
        for person, ids in enumerate(persons):
            roll = rng.random()
            other = persons[rng.randrange(count)]
            if roll < 0.15:  # the family tablet
                other.append(rng.choice([i for i in ids if i.kind != "customer_id"]))
            elif roll < 0.25:  # a second web account of the same person
                ids.append(Identifier("customer_id", f"C{person}.dup"))
            elif roll < 0.35:  # a household loyalty card or a shared mailbox
                shared = [i for i in ids if i.kind in ("loyalty_id", "email_hash")]
                if shared:
                    other.append(rng.choice(shared))
    return persons


def touches(
    rng: random.Random, persons: list[list[Identifier]], count: int, span: timedelta
) -> list[Touch]:
    """`count` touches of random people within `span` after T0, each with 1-3 identifiers."""
    out: list[Touch] = []
    seconds = int(span.total_seconds())
    for number in range(count):
        ids = persons[rng.randrange(len(persons))]
        carried = rng.sample(ids, min(len(ids), rng.choice((1, 1, 2, 2, 3))))
        at = T0 + timedelta(seconds=rng.randrange(seconds))
        out.append(
            Touch(
                event_id=f"e{number:05d}",
                channel=CHANNEL_OF[carried[0].kind],
                type=rng.choice(TYPES),
                occurred_at=at,
                received_at=at,
                identities=tuple(carried),
            )
        )
    return out
