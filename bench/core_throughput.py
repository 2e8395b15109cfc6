"""Throughput of the stitching core alone, on one core, with a realistic retail identity mix.

    PYTHONPATH=. python -m bench.core_throughput [--customers 100000] [--touches 1000000]
        [--views 6] [--warmup 0.2] [--gc default|tuned|freeze|off] [--json] [--simulator]
        [--profile]

Synthetic people (cookies, app devices, accounts with e-mail hashes, loyalty cards, phones)
visit over 30 days: web and app sessions of a few dozen views at most (some log in, some
buy), till visits (loyalty scan and purchase), campaign clicks that open a web session,
calls. Arrival order has the disorder real feeds have (SDK batches a few seconds out of
order, 2 % of tills uploading hours late). `--views 0` makes every visit one touch: each
touch then opens a session and often a journey or a customer, the worst case.

Touches are built before the clock starts. A warm-up share is processed first (as a worker
that restored its tables), then the heap is frozen and the rest is timed: routing, both step
functions and building every output record (`--json` adds their to_dict). Default driver:
both key tables in one process, each touch's messages delivered FIFO (one Faust worker with
all partitions); `--simulator` runs the seeded random scheduler of the tests with P=1.
CPU time is reported (process_time), so other load on the machine distorts less.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import time
from collections import Counter, deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from streams.core.identity import IdentifierState
from streams.core.messages import Send, Topic
from streams.core.model import Identifier, Touch
from streams.core.simulation import Simulator
from streams.core.stitcher import CustomerState, Stitcher

START = datetime(2024, 5, 1, tzinfo=UTC)
SPAN = timedelta(days=30)


class Person:
    """The identifiers one synthetic customer uses."""

    __slots__ = ("account", "card", "cookies", "devices", "email", "phone")

    def __init__(self, number: int, rng: random.Random) -> None:
        self.cookies = [
            Identifier("anonymous_id", f"ck-{number}-{i}") for i in range(rng.choice((1, 1, 2, 3)))
        ]
        self.devices = [
            Identifier("device_id", f"dv-{number}-{i}") for i in range(rng.choice((0, 0, 1, 1, 2)))
        ]
        registered = rng.random() < 0.45
        self.account = Identifier("customer_id", f"cu-{number}") if registered else None
        self.email = Identifier("email_hash", f"{number:064x}") if registered else None
        self.card = Identifier("loyalty_id", f"ly-{number}") if rng.random() < 0.35 else None
        self.phone = (
            Identifier("phone_hash", f"{number + 10**9:064x}") if rng.random() < 0.25 else None
        )


Event = tuple[float, str, str, list[Identifier], Decimal | None]
"""(seconds after START, channel, type, identifiers, value) of one touch to be."""

BROWSE = (("page_view", "product_view", "add_to_cart", "search"), (55, 30, 10, 5))


def _money(rng: random.Random) -> Decimal:
    return Decimal(rng.randrange(500, 30000)) / 100


MEAN_VIEWS = [6.0]  # set from the command line


def _session(
    rng: random.Random, at: float, channel: str, ids: list[Identifier], login: Identifier | None
) -> list[Event]:
    """A browsing session: a few to a few dozen views, maybe a login, maybe a purchase."""
    mean = MEAN_VIEWS[0]
    count = 1 + min(int(rng.expovariate(1 / mean)), 60) if mean else 1
    login_at = rng.randrange(count) if login is not None else count
    events: list[Event] = []
    for number in range(count):
        carried = [*ids, login] if login is not None and number >= login_at else ids
        kind = "login" if number == login_at else rng.choices(*BROWSE)[0]
        events.append((at, channel, kind, carried, None))
        at += rng.uniform(5, 150)
    if rng.random() < 0.06:
        events.append((at, channel, "purchase", events[-1][3], _money(rng)))
    return events


def _visit(person: Person, at: float, rng: random.Random) -> list[Event]:
    """One visit of the person, in a channel it uses, with the identifiers it carries there."""
    roll = rng.random()
    account = person.account
    if roll < 0.25 and person.devices:
        device = rng.choice(person.devices)
        logged_in = account is not None and rng.random() < 0.6
        return _session(rng, at, "app", [device, account] if logged_in else [device], None)  # type: ignore[list-item]
    if roll < 0.35 and (person.card or person.email):
        ids = [i for i in (person.card, person.email) if i is not None and rng.random() < 0.7]
        ids = ids or [person.card or person.email]  # type: ignore[list-item]
        if rng.random() < 0.9:
            return [(at, "pos", "loyalty_scan", ids, None),
                    (at + rng.uniform(30, 240), "pos", "purchase", ids, _money(rng))]  # fmt: skip
        return [(at, "pos", "return", ids, None)]
    if roll < 0.43 and person.email:
        cookie = rng.choice(person.cookies)
        click: Event = (at, "email", "click", [person.email, cookie], None)
        return [click, *_session(rng, at + 2, "web", [cookie], None)]
    if roll < 0.48 and person.phone:
        ids = [person.phone, account] if account and rng.random() < 0.5 else [person.phone]
        return [(at, "callcenter", "call_started", ids, None),
                (at + rng.uniform(120, 1200), "callcenter", "call_ended", ids, None)]  # fmt: skip
    login = account if account is not None and rng.random() < 0.35 else None
    return _session(rng, at, "web", [rng.choice(person.cookies)], login)


def workload(customers: int, touches: int, seed: int = 42) -> list[Touch]:
    """About `touches` touches of `customers` people over 30 days, in arrival order."""
    rng = random.Random(seed)
    people = [Person(number, rng) for number in range(customers)]
    # A few heavy users, many occasional ones (Zipf-like activity).
    weights = [1.0 / (1 + rank) ** 0.6 for rank in range(customers)]
    seconds = SPAN.total_seconds()
    events: list[tuple[float, Event]] = []
    while len(events) < touches:
        for person in rng.choices(people, weights, k=1000):
            visit = _visit(person, rng.random() * seconds, rng)
            # Apps and browsers send in batches (seconds); 2 % of tills upload tonight.
            late = (
                rng.uniform(3600, 10 * 3600) if visit[0][1] == "pos" and rng.random() < 0.02 else 0
            )
            events.extend((event[0] + late + rng.uniform(0, 5), event) for event in visit)
    events.sort(key=lambda pair: pair[0])
    out = []
    for number, (_, (offset, channel, kind, ids, value)) in enumerate(events[:touches]):
        at = START + timedelta(seconds=offset)
        out.append(
            Touch(
                event_id=f"ev-{number:09d}",
                channel=channel,
                type=kind,
                occurred_at=at,
                received_at=at,
                identities=tuple(ids),
                value=value,
                currency=None if value is None else "EUR",
            )
        )
    return out


class Pipeline:
    """Both key tables in one process; each touch's messages delivered FIFO.

    Records are counted and dropped, as an adapter drops them once produced (keeping
    millions alive would only measure the garbage collector walking them).
    """

    def __init__(self, stitcher: Stitcher, to_json: bool) -> None:
        self.stitcher = stitcher
        self.to_json = to_json
        self.identifiers: dict[str, IdentifierState] = {}
        self.customers: dict[str, CustomerState] = {}
        self.kinds: Counter[type] = Counter()
        self.messages = 0

    def feed(self, touches: list[Touch], freeze_every: int = 0) -> None:
        """Process touches to completion, one after the other (freezing the heap every N)."""
        identifiers, customers, kinds, to_json = (
            self.identifiers,
            self.customers,
            self.kinds,
            self.to_json,
        )
        stitcher = self.stitcher
        identifier_step, customer_step = stitcher.identifier_step, stitcher.customer_step
        identifier_topic = Topic.IDENTIFIER
        messages = 0
        queue: deque[Send] = deque()
        for number, touch in enumerate(touches, 1):
            if freeze_every and not number % freeze_every:
                gc.freeze()
            queue.append(stitcher.route(touch))
            while queue:
                topic, key, message = queue.popleft()
                messages += 1
                if topic is identifier_topic:
                    state, records, sends = identifier_step(key, identifiers.get(key), message)  # type: ignore[arg-type]
                    if state is not None:
                        identifiers[key] = state
                else:
                    customers[key], records, sends = customer_step(key, customers.get(key), message)  # type: ignore[arg-type]
                for record in records:
                    kinds[type(record)] += 1
                    if to_json:
                        record.to_dict()
                if sends:
                    queue.extend(sends)
        self.messages += messages


def main() -> None:
    """Build the workload, warm the state up, time the core, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--touches", type=int, default=1_000_000)
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.2,
        help="fraction of the touches processed before the clock starts (0: a cold start)",
    )
    parser.add_argument(
        "--gc",
        choices=("default", "tuned", "freeze", "off"),
        default="default",
        help="tuned: gc.set_threshold(50_000, 20, 100); freeze: also gc.freeze() every 10,000 "
        "touches (the core's state holds no reference cycles, so nothing leaks)",
    )
    parser.add_argument(
        "--views",
        type=float,
        default=6.0,
        help="mean extra views per web/app session (0: one-touch visits, the worst case)",
    )
    parser.add_argument("--simulator", action="store_true", help="random scheduler, P=1")
    parser.add_argument("--json", action="store_true", help="also build every record's to_dict")
    parser.add_argument("--profile", action="store_true", help="cProfile, top functions")
    args = parser.parse_args()

    built = time.perf_counter()
    MEAN_VIEWS[0] = args.views
    touches = workload(args.customers, args.touches)
    print(f"workload: {len(touches):,} touches of {args.customers:,} people over 30 days, "
          f"built in {time.perf_counter() - built:.1f} s")  # fmt: skip
    split = int(len(touches) * args.warmup)
    warm, timed = touches[:split], touches[split:]

    stitcher = Stitcher()
    if args.simulator:
        sim = Simulator(stitcher, partitions=1, seed=1)
        sim.submit(warm)
        sim.run()
    else:
        pipeline = Pipeline(stitcher, args.json)
        pipeline.feed(warm)
    # Like a worker that restored its tables: what exists now is old, keep the collector
    # from rescanning it (and the workload) on every full collection.
    gc.collect()
    gc.freeze()
    if args.gc == "off":
        gc.disable()
    elif args.gc in ("tuned", "freeze"):
        gc.set_threshold(50_000, 20, 100)
    profiler = cProfile.Profile() if args.profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    if args.simulator:
        sim.submit(timed)
        kinds = Counter(type(record) for record in sim.run())
        messages = sim.steps
    else:
        before = pipeline.messages
        pipeline.feed(timed, 10_000 if args.gc == "freeze" else 0)
        kinds, messages = pipeline.kinds, pipeline.messages - before
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu

    driver = "seeded simulator, P=1" if args.simulator else "direct, FIFO"
    print(f"driver: {driver}{', + to_dict of every record' if args.json else ''}; "
          f"gc {args.gc}; timed {len(timed):,} touches after {len(warm):,} of warm-up")  # fmt: skip
    print(f"elapsed: {elapsed:.2f} s wall, {cpu:.2f} s cpu, {messages:,} messages")
    print(f"throughput: {len(timed) / cpu:,.0f} touches/s on one core "
          f"({cpu / len(timed) * 1e6:.2f} us cpu per touch)")  # fmt: skip
    names = {kind.__name__: count for kind, count in kinds.items()}
    print(f"records (whole run): {sum(names.values()):,}: "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(names.items())))  # fmt: skip
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
