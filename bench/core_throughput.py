"""Throughput of the stitching core alone, on one core, with a realistic retail identity mix.

    PYTHONPATH=. python -m bench.core_throughput [--customers 100000] [--touches 1000000]
                                                 [--simulator] [--profile]

Synthetic people (cookies, app devices, accounts with e-mail hashes, loyalty cards, phones)
produce web, app, till, call-center and campaign touches over 30 days, in event-time order
with the disorder real feeds have (SDK batches a few seconds out of order, 2 % of tills
uploading hours late). Touches are built before the clock starts; the clock covers routing,
both step functions and building every output record (not serializing them: `--json` adds
that). Default driver: both key tables in one process, each touch's messages delivered FIFO
(what one Faust worker with all partitions does); `--simulator` runs the seeded random
scheduler of the tests with P=1 instead.
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


def _touch(number: int, person: Person, at: datetime, rng: random.Random) -> Touch:
    """One touch of the person, in a channel it can use, with the identifiers it carries."""
    roll = rng.random()
    ids: list[Identifier]
    value = None
    if roll < 0.52 or (roll < 0.77 and not person.devices):
        channel, ids = "web", [rng.choice(person.cookies)]
        if person.account and rng.random() < 0.3:
            ids.append(person.account)
        kind = rng.choices(
            ("page_view", "product_view", "add_to_cart", "purchase"), (60, 26, 10, 4)
        )[0]
    elif roll < 0.77:
        channel, ids = "app", [rng.choice(person.devices)]
        if person.account and rng.random() < 0.6:
            ids.append(person.account)
        kind = rng.choices(
            ("screen_view", "product_view", "add_to_cart", "purchase"), (60, 26, 10, 4)
        )[0]
    elif roll < 0.87 and (person.card or person.email):
        channel, ids = "pos", [i for i in (person.card, person.email) if i and rng.random() < 0.7]
        ids = ids or [person.card or person.email]  # type: ignore[list-item]
        kind = rng.choices(("purchase", "return", "loyalty_scan"), (80, 5, 15))[0]
    elif roll < 0.95 and person.email:
        channel, ids = "email", [person.email, rng.choice(person.cookies)]
        kind = "click"
    elif person.phone:
        channel, ids = "callcenter", [person.phone]
        if person.account and rng.random() < 0.5:
            ids.append(person.account)
        kind = "call_started"
    else:
        channel, ids, kind = "web", [rng.choice(person.cookies)], "page_view"
    if kind == "purchase":
        value = Decimal(rng.randrange(500, 30000)) / 100
    return Touch(
        event_id=f"ev-{number:09d}",
        channel=channel,
        type=kind,
        occurred_at=at,
        received_at=at,
        identities=tuple(ids),
        value=value,
        currency="EUR" if value is not None else None,
    )


def workload(customers: int, touches: int, seed: int = 42) -> list[Touch]:
    """Touches of `customers` people over 30 days, in a realistic arrival order."""
    rng = random.Random(seed)
    people = [Person(number, rng) for number in range(customers)]
    # A few heavy users, many occasional ones (Zipf-like activity).
    weights = [1.0 / (1 + rank) ** 0.6 for rank in range(customers)]
    chosen = rng.choices(people, weights, k=touches)
    seconds = SPAN.total_seconds()
    times = sorted(rng.random() * seconds for _ in range(touches))
    out = []
    arrival = []
    for number, (person, offset) in enumerate(zip(chosen, times, strict=True)):
        at = START + timedelta(seconds=offset)
        item = _touch(number, person, at, rng)
        delay = rng.uniform(0, 5)
        if item.channel == "pos" and rng.random() < 0.02:
            delay += rng.uniform(3600, 10 * 3600)  # the till uploads tonight
        out.append(item)
        arrival.append(offset + delay)
    order = sorted(range(touches), key=arrival.__getitem__)
    return [out[index] for index in order]


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
        choices=("default", "freeze", "off"),
        default="default",
        help="freeze: gc.freeze() every 10,000 touches (the state holds no reference cycles)",
    )
    parser.add_argument("--simulator", action="store_true", help="random scheduler, P=1")
    parser.add_argument("--json", action="store_true", help="also build every record's to_dict")
    parser.add_argument("--profile", action="store_true", help="cProfile, top functions")
    args = parser.parse_args()

    built = time.perf_counter()
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
