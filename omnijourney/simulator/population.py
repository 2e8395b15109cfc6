"""The simulated people: their identifiers, devices and habits, and the ids the retailer issues."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from omnijourney.simulator.fiction import email_address, phone_pool
from schemas.pii import PiiHasher

# Shares of a retailer's audience (a mid-size European omnichannel retailer, roughly).
REGISTERED: Final = 0.45
"""People with an account (a customer_id) when the simulation starts."""
LOYALTY_AMONG_REGISTERED: Final = 0.55
PHONE_AMONG_REGISTERED: Final = 0.6
PHONE_AMONG_OTHERS: Final = 0.1
APP_AMONG_REGISTERED: Final = 0.35
APP_AMONG_OTHERS: Final = 0.08
CARD_PAYERS: Final = 0.75
EMAIL_OPTIN_REGISTERED: Final = 0.65
EMAIL_OPTIN_OTHERS: Final = 0.15
SMS_OPTIN: Final = 0.35
CRM_SYNCED: Final = 0.7
"""Registered people whose CRM record is loaded when the pipeline starts."""
SHARED_TABLET: Final = 0.02
"""Registered people who share a family tablet (in pairs)."""


class Ids:
    """Issues every id of the simulation from its own seeded stream and counters."""

    __slots__ = ("_counters", "_rng")

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self._counters: dict[str, int] = {}

    def next(self, name: str) -> int:
        """The next number of a counter (1, 2, ...)."""
        value = self._counters.get(name, 0) + 1
        self._counters[name] = value
        return value

    def uuid(self) -> str:
        """A version-4 style uuid from the seeded stream."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def hex(self, digits: int) -> str:
        """Random lower-case hex digits."""
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"

    def customer_id(self) -> str:
        """A CRM customer number."""
        return f"C-{100000 + self.next('customer')}"

    def loyalty_id(self) -> str:
        """A loyalty card number."""
        number = self.next("loyalty")
        return f"LOY-{4400 + number // 10000:04d}-{number % 10000:04d}"


@dataclass(slots=True)
class Browser:
    """A web browser of one person: its cookie and whether it remembers a login."""

    anonymous_id: str
    mobile: bool
    logged_in: bool = False


@dataclass(slots=True)
class Tablet:
    """A family tablet with the app, shared by two registered people."""

    device_id: str
    members: tuple[int, int]
    logged_in: int | None = None
    """Index of the person whose account the app is logged into."""


@dataclass(slots=True)
class Person:
    """One real person, with what the retailer's systems may know of them."""

    index: int
    person_id: str
    email: str
    email_key: str
    phone: str | None
    phone_key: str | None
    customer_id: str | None
    loyalty_id: str | None
    token: str | None
    """Payment card token, sent by tills as an anonymous_id (card payers only)."""
    browsers: list[Browser]
    app_device: str | None
    app_logged_in: bool
    home_store: int
    casual_rate: float
    """Browsing sessions without a purchase in mind, per day."""
    mission_rate: float
    """Shopping missions started per day."""
    email_optin: bool
    sms_optin: bool
    esp_knows: bool
    """Whether the email tool sends the customer_id along with the address."""
    geo_consent: bool
    crm_synced: bool
    ios: bool
    tablet: Tablet | None = None
    clock: int = 0
    """Event time of the person's latest touch: the next one comes after it."""
    busy_until: int = 0
    """A shopping mission is under way until then."""
    pending: list[tuple[int, int, str, Any]] = field(default_factory=list)
    """Heap of (time, seq, action, payload) the person will do."""

    @property
    def registered(self) -> bool:
        """Whether the person has an account."""
        return self.customer_id is not None


def _rate(rng: random.Random, per_month: float, sigma: float, cap: float) -> float:
    return min(cap, rng.lognormvariate(math.log(per_month), sigma)) / 30.0


def make_population(
    rng: random.Random, ids: Ids, customers: int, stores: int, hasher: PiiHasher
) -> tuple[list[Person], list[Tablet]]:
    """`customers` people and the family tablets some of them share."""
    registered = [rng.random() < REGISTERED for _ in range(customers)]
    wants_phone = [
        rng.random() < (PHONE_AMONG_REGISTERED if reg else PHONE_AMONG_OTHERS) for reg in registered
    ]
    phones = iter(phone_pool(rng, sum(wants_phone)))
    people = []
    for index in range(customers):
        reg = registered[index]
        email = email_address(index + 1)
        phone = next(phones, None) if wants_phone[index] else None
        has_app = rng.random() < (APP_AMONG_REGISTERED if reg else APP_AMONG_OTHERS)
        ios = rng.random() < 0.45
        n_browsers = 1 if (roll := rng.random()) < 0.65 else 2 if roll < 0.93 else 3
        people.append(
            Person(
                index=index,
                person_id=f"P-{index + 1:07d}",
                email=email,
                email_key=f"email_hash:{hasher.email_hash(email)}",
                phone=phone,
                phone_key=None if phone is None else f"phone_hash:{hasher.phone_hash(phone)}",
                customer_id=ids.customer_id() if reg else None,
                loyalty_id=ids.loyalty_id()
                if reg and rng.random() < LOYALTY_AMONG_REGISTERED
                else None,
                token=f"tok_{ids.hex(24)}" if rng.random() < CARD_PAYERS else None,
                browsers=[Browser(ids.uuid(), mobile=i > 0) for i in range(n_browsers)],
                app_device=_device_id(ids, ios) if has_app else None,
                app_logged_in=False,
                home_store=rng.randrange(stores),
                casual_rate=_rate(rng, 2.0, 0.9, 40.0),
                mission_rate=_rate(rng, 0.8, 0.7, 6.0),
                email_optin=rng.random() < (EMAIL_OPTIN_REGISTERED if reg else EMAIL_OPTIN_OTHERS),
                sms_optin=reg and phone is not None and rng.random() < SMS_OPTIN,
                esp_knows=reg and rng.random() < 0.5,
                geo_consent=rng.random() < 0.4,
                crm_synced=reg and rng.random() < CRM_SYNCED,
                ios=ios,
            )
        )
    tablets = _tablets(rng, ids, people)
    return people, tablets


def _device_id(ids: Ids, ios: bool) -> str:
    value = ids.uuid()
    return value.upper() if ios else value


def _tablets(rng: random.Random, ids: Ids, people: list[Person]) -> list[Tablet]:
    sharing = [p for p in people if p.registered and rng.random() < SHARED_TABLET]
    tablets = []
    for first, second in zip(sharing[::2], sharing[1::2], strict=False):
        tablet = Tablet(_device_id(ids, rng.random() < 0.5), (first.index, second.index))
        first.tablet = second.tablet = tablet
        tablets.append(tablet)
    return tablets
