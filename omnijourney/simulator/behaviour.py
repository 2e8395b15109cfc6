"""What the people do, one day at a time: sessions, missions, store visits, calls, campaigns.

Pure and seeded: every choice comes from the one `random.Random` the `Life` is given, and
time is the simulated clock (whole epoch seconds). A person's touches come out in event-time
order, each at least a second after the previous one.

Shopping missions give journeys their shape: `web_only` (research and buy online), `ropo`
(research online, buy in store), `showrooming` (see it in store, buy online), `store_only`.
Casual browsing rarely buys, so session conversion lands at a few percent, as in retail.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from omnijourney.simulator.catalog import Catalog, Product, Store, Till
from omnijourney.simulator.fiction import email_spelling, phone_spelling
from omnijourney.simulator.population import Browser, Ids, Person

Ident = tuple[str, str, str]
"""(kind, value as the producer sends it, truth key `kind:value` as the pipeline sees it)."""

DAY: Final = 86_400
HOUR: Final = 3_600

MISSION_KINDS: Final = ("web_only", "ropo", "showrooming", "store_only")
_MISSION_WEIGHTS: Final = (38, 22, 10, 30)
_MISSION_BUYS: Final = {"web_only": 0.35, "ropo": 0.60, "showrooming": 0.55, "store_only": 0.75}
_ONLINE_HOURS: Final = tuple(
    itertools.accumulate(
        (
            1,
            0.5,
            0.3,
            0.2,
            0.2,
            0.4,
            1,
            2,
            3,
            4,
            4.5,
            5,
            5.5,
            5,
            4.5,
            4.5,
            5,
            5.5,
            6.5,
            7.5,
            8,
            7,
            5,
            3,
        )
    )
)
_STORE_HOURS: Final = tuple(
    itertools.accumulate((0,) * 9 + (3, 4, 5, 6, 5, 5, 6, 7, 8, 7, 5) + (0,) * 4)
)
_CALL_HOURS: Final = tuple(
    itertools.accumulate((0,) * 8 + (5, 6, 6, 5, 4, 5, 5, 5, 4, 4, 3, 2) + (0,) * 4)
)
_HOURS: Final = tuple(range(24))
_SHOP: Final = "https://shop.example.com"
_REFERRERS: Final = (None, None, "https://www.example.org/search", "https://social.example.net/")


@dataclass(slots=True)
class Touch:
    """One thing a person did, as a channel records it."""

    ts: int
    channel: str
    type: str
    ids: tuple[Ident, ...]
    props: dict[str, Any]
    tags: tuple[str, ...] = ()
    upload: int | None = None
    """When a nightly-batch till uploads it (None: sent right away)."""


@dataclass(slots=True)
class Mission:
    """A shopping intent that gives a journey its shape."""

    kind: str
    products: tuple[Product, ...]
    buy: bool


@dataclass(slots=True)
class Order:
    """A purchase a call or a return may follow up on."""

    order_id: str
    channel: str
    lines: list[dict[str, Any]]
    total: Decimal
    receipt: bool
    """A till receipt (True) or an online order."""


@dataclass(slots=True)
class Campaign:
    """One email or SMS campaign of the retailer."""

    campaign_id: str
    channel: str
    category: str


@dataclass(slots=True)
class Stats:
    """Counts of behaviours, for the summary."""

    missions: dict[str, int]
    missions_bought: dict[str, int]
    signups: int = 0
    enrolments: int = 0
    cookie_resets: int = 0
    tablet_sessions: int = 0


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth: fine for the small daily means used here
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


class Life:
    """Runs the people's days."""

    def __init__(
        self,
        rng: random.Random,
        ids: Ids,
        catalog: Catalog,
        currency: str,
        national_phones: bool,
    ) -> None:
        self.rng = rng
        self.ids = ids
        self.catalog = catalog
        self.currency = currency
        self.national_phones = national_phones
        self.stats = Stats({k: 0 for k in MISSION_KINDS}, {k: 0 for k in MISSION_KINDS})
        self._seq = itertools.count()
        self._out: list[Touch] = []

    # --- scheduling ---------------------------------------------------------------------------

    def schedule(self, person: Person, ts: int, action: str, payload: Any = None) -> None:
        """Make the person do `action` at (or soon after) `ts`."""
        heapq.heappush(person.pending, (ts, next(self._seq), action, payload))

    def at_hour(self, day_start: int, hours: Sequence[float]) -> int:
        """A time in the day drawn from the hourly profile (cumulative weights)."""
        hour = self.rng.choices(_HOURS, cum_weights=hours)[0]
        return day_start + hour * HOUR + self.rng.randrange(HOUR)

    def live(self, person: Person, day_start: int, day_end: int) -> list[Touch]:
        """The person's touches of one day (the last session may run past midnight)."""
        self._plan(person, day_start)
        out: list[Touch] = []
        self._out = out
        pending = person.pending
        while pending and pending[0][0] < day_end:
            ts, _, action, payload = heapq.heappop(pending)
            start = max(ts, person.clock + self.rng.randint(20, 600))
            getattr(self, f"_do_{action}")(person, start, payload)
        return out

    def _plan(self, person: Person, day_start: int) -> None:
        rng = self.rng
        for browser in person.browsers:
            if rng.random() < 0.01:  # cookies cleared, private window, new phone
                browser.anonymous_id = self.ids.uuid()
                browser.logged_in = False
                self.stats.cookie_resets += 1
        for _ in range(_poisson(rng, person.casual_rate)):
            self.schedule(person, self.at_hour(day_start, _ONLINE_HOURS), "casual")
        if person.busy_until < day_start and rng.random() < person.mission_rate:
            self._start_mission(person, day_start)
        if person.phone is not None and rng.random() < 0.2 / 30:
            self.schedule(person, self.at_hour(day_start, _CALL_HOURS), "call", None)

    def _start_mission(self, person: Person, day_start: int) -> None:
        rng = self.rng
        kind = rng.choices(MISSION_KINDS, weights=_MISSION_WEIGHTS)[0]
        category = rng.choice(self.catalog.categories)
        products = tuple(rng.sample(self.catalog.by_category[category], rng.randint(1, 4)))
        mission = Mission(kind, products, rng.random() < _MISSION_BUYS[kind])
        self.stats.missions[kind] += 1
        self.stats.missions_bought[kind] += mission.buy
        day = 0
        steps: list[tuple[int, str]] = []
        if kind in ("web_only", "ropo"):
            for _ in range(min(4 if kind == "web_only" else 3, 1 + _geometric(rng, 0.5))):
                steps.append((day, "research"))
                day += rng.choice((0, 0, 1, 1, 2))
            if kind == "web_only":
                if mission.buy:
                    steps[-1] = (steps[-1][0], "buy_online")
            else:
                steps.append((day + rng.randint(0, 3), "store"))
        elif kind == "showrooming":
            steps.append((0, "store_look"))
            steps.append((rng.randint(0, 3), "buy_online" if mission.buy else "research"))
        else:
            steps.append((rng.randint(0, 1), "store"))
        last = day_start
        for offset, action in steps:
            hours = _STORE_HOURS if action.startswith("store") else _ONLINE_HOURS
            ts = max(self.at_hour(day_start + offset * DAY, hours), last + 600)
            self.schedule(person, ts, action, mission)
            last = ts
        person.busy_until = last + DAY

    # --- emitting -----------------------------------------------------------------------------

    def _emit(
        self,
        person: Person,
        ts: int,
        what: str,
        ids: Sequence[Ident],
        props: dict[str, Any],
        *,
        tags: tuple[str, ...] = (),
        upload: int | None = None,
    ) -> int:
        """Record a touch `what` = `channel/type` at `ts` or just after the previous one."""
        channel, _, type_ = what.partition("/")
        ts = max(ts, person.clock + 1)
        person.clock = ts
        self._out.append(Touch(ts, channel, type_, tuple(ids), props, tags, upload))
        return ts

    def _step(self, ts: int, low: int = 8, high: int = 150) -> int:
        """The next event of a session: seconds to a couple of minutes later."""
        return ts + min(high, max(low, int(self.rng.lognormvariate(3.6, 0.7))))

    def _email(self, person: Person) -> Ident:
        return ("email", email_spelling(person.email, self.rng), person.email_key)

    def _phone(self, person: Person) -> Ident:
        assert person.phone is not None and person.phone_key is not None
        spelled = phone_spelling(person.phone, self.rng, self.national_phones)
        return ("phone", spelled, person.phone_key)

    # --- online sessions ----------------------------------------------------------------------

    def _do_casual(self, person: Person, ts: int, payload: None) -> None:
        self._online(person, ts, None, buy=False, tags=())

    def _do_research(self, person: Person, ts: int, mission: Mission) -> None:
        self._online(person, ts, mission, buy=False, tags=(mission.kind,))

    def _do_buy_online(self, person: Person, ts: int, mission: Mission) -> None:
        self._online(person, ts, mission, buy=True, tags=(mission.kind,))

    def _online(
        self,
        person: Person,
        ts: int,
        mission: Mission | None,
        *,
        buy: bool,
        tags: tuple[str, ...],
        landing: dict[str, Any] | None = None,
        identify: Ident | None = None,
    ) -> int:
        app = person.app_device is not None or person.tablet is not None
        if app and landing is None and self.rng.random() < 0.45:
            return self._app_session(person, ts, mission, buy=buy, tags=tags)
        browser = self._browser(person, mobile=landing is not None and landing.get("sms", False))
        return self._web_session(
            person, ts, browser, mission, buy=buy, tags=tags, landing=landing, identify=identify
        )

    def _browser(self, person: Person, mobile: bool) -> Browser:
        browsers = person.browsers
        if mobile and len(browsers) > 1:
            return browsers[1]
        return browsers[0] if len(browsers) == 1 or self.rng.random() < 0.6 else browsers[-1]

    def _web_session(
        self,
        person: Person,
        ts: int,
        browser: Browser,
        mission: Mission | None,
        *,
        buy: bool,
        tags: tuple[str, ...],
        landing: dict[str, Any] | None,
        identify: Ident | None,
    ) -> int:
        rng = self.rng

        def ids() -> list[Ident]:
            out: list[Ident] = [("anonymous_id", browser.anonymous_id, "")]
            if browser.logged_in and person.customer_id is not None:
                out.append(("customer_id", person.customer_id, ""))
            return out

        products = mission.products if mission else (rng.choice(self.catalog.products),)
        first = ids() + ([identify] if identify else [])
        page: dict[str, Any] = {"url": f"{_SHOP}/", "page_title": "Home | Example Shop"}
        if landing is not None:
            page = {"url": landing["url"], "utm": landing["utm"], "page_title": "Offers"}
        elif (referrer := rng.choice(_REFERRERS)) is not None:
            page["referrer"] = referrer
        ts = self._emit(person, ts, "web/page_view", first, page, tags=tags)
        views = (2 + _geometric(rng, 0.3)) if mission else _geometric(rng, 0.45)
        login_chance = 0.25 if mission else 0.08
        signup_chance = 0.1 if mission else 0.03
        carted = False
        for _ in range(min(views, 20)):
            ts = self._step(ts)
            roll = rng.random()
            if not browser.logged_in and roll < login_chance / 4:
                if person.customer_id is not None:
                    ts = self._login(person, ts, browser, tags)
                elif rng.random() < signup_chance:
                    ts = self._signup(person, ts, browser, tags)
                continue
            product = rng.choice(products)
            if roll < 0.12:
                props = {"query": product.search_query(rng), "results": rng.randint(0, 60)}
                ts = self._emit(person, ts, "web/search", ids(), props, tags=tags)
            elif roll < (0.7 if mission else 0.45):
                props = {
                    "url": f"{_SHOP}/p/{product.product_id}",
                    "product": product.as_property(self.currency),
                }
                ts = self._emit(person, ts, "web/product_view", ids(), props, tags=tags)
            elif roll < (0.82 if mission else 0.47) and not carted:
                carted = True
                props = {"product": product.as_property(self.currency), "quantity": 1}
                ts = self._emit(person, ts, "web/add_to_cart", ids(), props, tags=tags)
            else:
                url = f"{_SHOP}/c/{product.category}"
                props = {"url": url, "page_title": f"{product.category.title()} | Example Shop"}
                ts = self._emit(person, ts, "web/page_view", ids(), props, tags=tags)
        if buy:
            ts = self._checkout(
                person, ts, "web", ids, browser=browser, products=products, tags=tags
            )
        return ts

    def _login(self, person: Person, ts: int, browser: Browser, tags: tuple[str, ...]) -> int:
        browser.logged_in = True
        assert person.customer_id is not None
        ids: list[Ident] = [
            ("anonymous_id", browser.anonymous_id, ""),
            ("customer_id", person.customer_id, ""),
        ]
        if self.rng.random() < 0.3:  # signed in with the email address as user name
            ids.append(self._email(person))
        return self._emit(person, ts, "web/login", ids, {"method": "password"}, tags=tags)

    def _signup(self, person: Person, ts: int, browser: Browser, tags: tuple[str, ...]) -> int:
        person.customer_id = self.ids.customer_id()
        self.stats.signups += 1
        browser.logged_in = True
        ids: list[Ident] = [
            ("anonymous_id", browser.anonymous_id, ""),
            ("customer_id", person.customer_id, ""),
            self._email(person),
        ]
        ts = self._emit(person, ts, "web/login", ids, {"method": "signup"}, tags=(*tags, "signup"))
        return self._crm(person, ts + self.rng.randint(1, 20), "created")

    def _checkout(
        self,
        person: Person,
        ts: int,
        channel: str,
        ids: Any,
        *,
        browser: Browser | None,
        products: tuple[Product, ...],
        tags: tuple[str, ...],
    ) -> int:
        """Cart, checkout, purchase: logged in, or as a guest giving the email address."""
        rng = self.rng
        lines = self._lines(products)
        total = _total(lines)
        if channel == "web" and browser is not None and not browser.logged_in:
            if person.customer_id is not None and rng.random() < 0.85:
                ts = self._login(person, self._step(ts), browser, tags)
            elif person.customer_id is None and rng.random() < 0.3:  # "create an account?"
                ts = self._signup(person, self._step(ts), browser, tags)
        guest: list[Ident] = []
        base = ids()
        if not any(kind == "customer_id" for kind, _, _ in base):
            guest = [self._email(person)]
            tags = (*tags, "guest")
        money = self._money
        cart = f"CART-{self.ids.next('cart')}"
        if channel == "web":
            for step in (1, 2):
                props = {"cart_id": cart, "step": step, "lines": lines, "total": money(total)}
                ts = self._step(ts, 20)
                ts = self._emit(person, ts, "web/checkout", base + guest, props, tags=tags)
        order_id = f"{'W' if channel == 'web' else 'A'}-{self.ids.next('order'):08d}"
        shipping = Decimal("0.00") if total >= 50 else Decimal("4.90")
        props = {
            "order_id": order_id,
            "lines": lines,
            "total": money(total + shipping),
            "shipping": money(shipping),
            "payment_method": rng.choice(("card", "card", "paypal", "klarna")),
        }
        ts = self._emit(
            person, self._step(ts, 30), f"{channel}/purchase", base + guest, props, tags=tags
        )
        self._follow_up(person, ts, Order(order_id, channel, lines, total, receipt=False))
        return ts

    def _app_session(
        self, person: Person, ts: int, mission: Mission | None, *, buy: bool, tags: tuple[str, ...]
    ) -> int:
        rng = self.rng
        tablet = person.tablet
        on_tablet = tablet is not None and (person.app_device is None or rng.random() < 0.4)
        if on_tablet:
            assert tablet is not None
            device = tablet.device_id
            tags = (*tags, "shared_device")
            self.stats.tablet_sessions += 1
            if tablet.logged_in != person.index:
                # the partner's account is open: switch to mine, or just browse logged out
                tablet.logged_in = person.index if rng.random() < 0.5 else None
                if tablet.logged_in == person.index:
                    ts = self._app_login(person, ts, device, tags)
            logged_in = tablet.logged_in == person.index
        else:
            assert person.app_device is not None
            device = person.app_device
            if not person.app_logged_in and person.customer_id is not None and rng.random() < 0.5:
                person.app_logged_in = True
                ts = self._app_login(person, ts, device, tags)
            logged_in = person.app_logged_in

        def ids() -> list[Ident]:
            out: list[Ident] = [("device_id", device, "")]
            if logged_in and person.customer_id is not None:
                out.append(("customer_id", person.customer_id, ""))
            return out

        os = "ios" if person.ios else "android"
        ctx: dict[str, Any] = {"app_version": "5.2.0", "os": os}
        screen = {**ctx, "screen_name": "Home"}
        ts = self._emit(person, self._step(ts, 2, 30), "app/screen_view", ids(), screen, tags=tags)
        products = mission.products if mission else (rng.choice(self.catalog.products),)
        views = (2 + _geometric(rng, 0.3)) if mission else _geometric(rng, 0.4)
        for _ in range(min(views, 20)):
            ts = self._step(ts, 4, 90)
            product = rng.choice(products)
            roll = rng.random()
            if roll < (0.65 if mission else 0.4):
                props = {**ctx, "product": product.as_property(self.currency)}
                ts = self._emit(person, ts, "app/product_view", ids(), props, tags=tags)
            elif roll < (0.75 if mission else 0.42):
                props = {**ctx, "product": product.as_property(self.currency), "quantity": 1}
                ts = self._emit(person, ts, "app/add_to_cart", ids(), props, tags=tags)
            else:
                props = {**ctx, "screen_name": product.category.title()}
                ts = self._emit(person, ts, "app/screen_view", ids(), props, tags=tags)
        if buy:
            ts = self._checkout(person, ts, "app", ids, browser=None, products=products, tags=tags)
        return ts

    def _app_login(self, person: Person, ts: int, device: str, tags: tuple[str, ...]) -> int:
        assert person.customer_id is not None
        ids: list[Ident] = [("device_id", device, ""), ("customer_id", person.customer_id, "")]
        return self._emit(person, ts, "app/login", ids, {"method": "password"}, tags=tags)

    # --- stores -------------------------------------------------------------------------------

    def _do_store(self, person: Person, ts: int, mission: Mission) -> None:
        self._store_visit(person, ts, mission, buy=mission.buy)

    def _do_store_look(self, person: Person, ts: int, mission: Mission) -> None:
        self._store_visit(person, ts, mission, buy=False)

    def _do_return(self, person: Person, ts: int, order: Order) -> None:
        self._store_visit(person, ts, None, buy=False, returned=order)

    def _store(self, person: Person) -> Store:
        stores = self.catalog.stores
        return stores[person.home_store] if self.rng.random() < 0.75 else self.rng.choice(stores)

    def _store_visit(
        self,
        person: Person,
        ts: int,
        mission: Mission | None,
        *,
        buy: bool,
        returned: Order | None = None,
    ) -> None:
        rng = self.rng
        store = self._store(person)
        tags: tuple[str, ...] = (mission.kind,) if mission else ("return",)
        if person.app_device is not None and person.geo_consent and rng.random() < 0.6:
            ids: list[Ident] = [("device_id", person.app_device, "")]
            if person.app_logged_in and person.customer_id is not None:
                ids.append(("customer_id", person.customer_id, ""))
            props: dict[str, Any] = {"store_id": store.store_id, "detected_by": "app_geofence"}
            ts = self._emit(person, ts, "pos/store_visit", ids, props, tags=tags)
        elif person.loyalty_id is not None and rng.random() < 0.3:
            ids = [("loyalty_id", person.loyalty_id, "")]
            props = {"store_id": store.store_id, "detected_by": "clienteling"}
            ts = self._emit(person, ts, "pos/store_visit", ids, props, tags=tags)
        ts += rng.randint(300, 2400)
        if not buy and returned is None:
            if person.loyalty_id is not None and rng.random() < 0.3:  # a price check at a kiosk
                kiosk: Ident = ("loyalty_id", person.loyalty_id, "")
                props = {"store_id": store.store_id}
                self._emit(person, ts, "pos/loyalty_scan", [kiosk], props, tags=tags)
            return  # looked around, bought nothing: no till saw them
        till = rng.choice(store.tills)
        upload = self._upload_time(ts, till)
        props_base: dict[str, Any] = {"store_id": store.store_id, "till_id": till.till_id}
        ids = []
        enrolled: str | None = None
        if person.loyalty_id is None and buy and rng.random() < 0.04:
            enrolled = self._enrol(person)
        if person.loyalty_id is not None and (enrolled is not None or rng.random() < 0.75):
            loyalty: Ident = ("loyalty_id", person.loyalty_id, "")
            ts = self._emit(
                person, ts, "pos/loyalty_scan", [loyalty], props_base, tags=tags, upload=upload
            )
            ts += rng.randint(15, 90)
            ids.append(loyalty)
        if person.token is not None and rng.random() < 0.9:
            ids.append(("anonymous_id", person.token, ""))
        receipt = f"R-{store.store_id[2:]}-{till.till_id[2:]}-{self.ids.next('receipt'):07d}"
        if not ids:  # cash, no card: the till only knows this receipt
            ids.append(("anonymous_id", f"rcpt-{receipt}", ""))
        if rng.random() < (0.2 if person.customer_id is not None else 0.08):
            ids.append(self._email(person))  # e-receipt
        if returned is not None:
            lines = returned.lines[:1]
            props = {**props_base, "receipt_id": receipt, "lines": lines}
            props["total"] = self._money(_total(lines))
            props["original_order_id" if not returned.receipt else "original_receipt_id"] = (
                returned.order_id
            )
            props["reason"] = rng.choice(("wrong_size", "damaged", "changed_mind", "not_as_shown"))
            self._emit(person, ts, "pos/return", ids, props, tags=tags, upload=upload)
            return
        assert mission is not None
        lines = self._lines(mission.products)
        total = _total(lines)
        props = {
            **props_base,
            "receipt_id": receipt,
            "lines": lines,
            "total": self._money(total),
            "payment_method": "card" if any(v == person.token for _, v, _ in ids) else "cash",
        }
        ts = self._emit(person, ts, "pos/purchase", ids, props, tags=tags, upload=upload)
        self._follow_up(person, ts, Order(receipt, "pos", lines, total, receipt=True))
        if enrolled is not None:
            self._crm(person, ts + rng.randint(60, 3600), enrolled)

    def _enrol(self, person: Person) -> str:
        """Join the loyalty programme at the till (an account comes with it): the CRM action."""
        self.stats.enrolments += 1
        action = "updated"
        if person.customer_id is None:
            person.customer_id = self.ids.customer_id()
            action = "created"
        person.loyalty_id = self.ids.loyalty_id()
        return action

    def _upload_time(self, ts: int, till: Till) -> int | None:
        if not till.batch:
            return None
        nights = 1 if self.rng.random() < 0.95 else 2  # the upload failed once: a night later
        return (ts // DAY + nights) * DAY + till.upload_offset + self.rng.randrange(300)

    # --- follow-ups, calls, campaigns, CRM ----------------------------------------------------

    def _follow_up(self, person: Person, ts: int, order: Order) -> None:
        rng = self.rng
        online = not order.receipt
        if person.phone is not None and rng.random() < (0.07 if online else 0.02):
            day = (ts // DAY + rng.randint(1, 5)) * DAY
            self.schedule(person, self.at_hour(day, _CALL_HOURS), "call", order)
        if rng.random() < (0.08 if online else 0.05):
            day = (ts // DAY + rng.randint(2, 10)) * DAY
            self.schedule(person, self.at_hour(day, _STORE_HOURS), "return", order)

    def _do_call(self, person: Person, ts: int, order: Order | None) -> None:
        rng = self.rng
        call: dict[str, Any] = {
            "call_id": f"CALL-{self.ids.next('call'):08d}",
            "queue": "orders" if order else "service",
            "reason": rng.choice(("order_status", "delivery", "return")) if order else "question",
        }
        if order is not None:
            call["order_id"] = order.order_id
        tags = ("call",)
        ts = self._emit(
            person, ts, "callcenter/call_started", [self._phone(person)], call, tags=tags
        )
        ids = [self._phone(person)]
        if person.customer_id is not None and rng.random() < 0.7:  # the agent found the account
            ids.append(("customer_id", person.customer_id, ""))
        duration = rng.randint(60, 1200)
        ended = {
            **call,
            "outcome": rng.choice(("resolved", "resolved", "escalated")),
            "duration_s": duration,
        }
        self._emit(
            person,
            ts + duration + rng.randint(0, 30),
            "callcenter/call_ended",
            ids,
            ended,
            tags=tags,
        )

    def _do_email(self, person: Person, ts: int, campaign: Campaign) -> None:
        rng = self.rng
        ids = self._campaign_ids(person, self._email(person))
        props = {"campaign_id": campaign.campaign_id, "message_id": f"M-{self.ids.next('msg')}"}
        tags = ("campaign",)
        ts = self._emit(person, ts, "email/sent", ids, props, tags=tags)
        if rng.random() < 0.97:
            ts = self._emit(
                person, ts + rng.randint(5, 300), "email/delivered", ids, props, tags=tags
            )
            if rng.random() < 0.25:
                self.schedule(
                    person, ts + rng.randint(600, 10 * HOUR), "email_open", (campaign, props)
                )

    def _do_email_open(self, person: Person, ts: int, payload: tuple[Campaign, Any]) -> None:
        rng = self.rng
        campaign, props = payload
        ids = self._campaign_ids(person, self._email(person))
        tags = ("campaign",)
        ts = self._emit(person, ts, "email/open", ids, props, tags=tags)
        if rng.random() < 0.2:
            landing = self._landing(campaign, "email")
            click = {**props, "url": landing["url"]}
            ts = self._emit(person, ts + rng.randint(5, 90), "email/click", ids, click, tags=tags)
            # the link carries a hashed id the web tag uses to identify the visitor
            identify = self._email(person) if rng.random() < 0.5 else None
            self._online(
                person,
                ts + rng.randint(2, 10),
                None,
                buy=rng.random() < 0.1,
                tags=tags,
                landing=landing,
                identify=identify,
            )

    def _do_sms(self, person: Person, ts: int, campaign: Campaign) -> None:
        rng = self.rng
        ids = self._campaign_ids(person, self._phone(person))
        props = {"campaign_id": campaign.campaign_id}
        tags = ("campaign",)
        ts = self._emit(person, ts, "sms/sent", ids, props, tags=tags)
        if rng.random() < 0.98:
            ts = self._emit(person, ts + rng.randint(2, 60), "sms/delivered", ids, props, tags=tags)
            if rng.random() < 0.05:
                landing = self._landing(campaign, "sms")
                click = {**props, "url": landing["url"]}
                ts = self._emit(
                    person, ts + rng.randint(30, 1800), "sms/click", ids, click, tags=tags
                )
                self._online(
                    person,
                    ts + rng.randint(2, 10),
                    None,
                    buy=rng.random() < 0.05,
                    tags=tags,
                    landing=landing,
                )

    def _campaign_ids(self, person: Person, contact: Ident) -> list[Ident]:
        if person.esp_knows and person.customer_id is not None:
            return [contact, ("customer_id", person.customer_id, "")]
        return [contact]

    def _landing(self, campaign: Campaign, medium: str) -> dict[str, Any]:
        url = (
            f"{_SHOP}/c/{campaign.category}?utm_source={medium}&utm_campaign={campaign.campaign_id}"
        )
        utm = {"source": medium, "medium": medium, "campaign": campaign.campaign_id}
        return {"url": url, "utm": utm, "sms": medium == "sms"}

    def _do_crm(self, person: Person, ts: int, action: str) -> None:
        self._crm(person, ts, action)

    def _crm(self, person: Person, ts: int, action: str) -> int:
        """A CRM registry update naming the customer's ids (links them, is no activity)."""
        assert person.customer_id is not None
        ids: list[Ident] = [("customer_id", person.customer_id, ""), self._email(person)]
        if person.loyalty_id is not None:
            ids.append(("loyalty_id", person.loyalty_id, ""))
        if person.phone is not None:
            ids.append(self._phone(person))
        store = self.catalog.stores[person.home_store].store_id
        props: dict[str, Any] = {"action": action, "home_store_id": store}
        if person.loyalty_id is not None:
            props["loyalty_tier"] = "gold" if person.index % 5 == 0 else "silver"
        return self._emit(person, ts, "crm/customer_update", ids, props, tags=("crm",))

    # --- money --------------------------------------------------------------------------------

    def _lines(self, products: tuple[Product, ...]) -> list[dict[str, Any]]:
        rng = self.rng
        chosen = rng.sample(products, rng.randint(1, len(products)))
        return [
            {
                "product_id": p.product_id,
                "name": p.name,
                "category": p.category,
                "quantity": 1 if rng.random() < 0.85 else 2,
                "unit_price": self._money(p.price),
            }
            for p in chosen
        ]

    def _money(self, amount: Decimal) -> dict[str, str]:
        return {"amount": str(amount), "currency": self.currency}


def _total(lines: list[dict[str, Any]]) -> Decimal:
    return sum(
        (Decimal(line["unit_price"]["amount"]) * line["quantity"] for line in lines),
        Decimal("0.00"),
    )


def _geometric(rng: random.Random, p: float) -> int:
    """Failures before the first success: 0, 1, 2... with mean (1 - p) / p."""
    count = 0
    while rng.random() > p and count < 50:
        count += 1
    return count
