"""One worker against two workers of one consumer group on the same topics: throughput, spread.

    PYTHONPATH=. python -m bench.workers_scaling [-n 20000] [--workers 2]

Black box, on the local broker (started when it is not running, stopped again at the end).
For each configuration a fresh app id: its workers start (the second one with the same app id,
its own web port and data dir) and the bench waits until every /health answers 200 and the
partition assignment stopped moving. Then the same n simulated touchpoints are produced to the
raw channel topics as fast as the broker takes them, and the clock runs from the first raw
record's broker timestamp to the last event's first enriched record on journeys.touchpoints.
The producer and the watcher (this process) share the machine's cores with the workers: on
two cores the point is that the partitions spread, not that the speed doubles.
"""

from __future__ import annotations

import argparse
import asyncio

from bench._machine import describe
from bench._pipeline import (
    Input,
    local_broker,
    prepare_topics,
    produce_watched,
    simulated,
    span_s,
    start_group_at_end,
    utc_now,
    worker_group,
)
from omnijourney.settings import Settings, load_settings


def measure(settings: Settings, inputs: list[Input], count: int) -> float:
    """Throughput (touchpoints/s) of `count` settled workers of one group through a burst."""
    bootstrap = settings.kafka.bootstrap
    with worker_group(settings, f"scale{count}") as workers:
        asyncio.run(start_group_at_end(bootstrap, workers.app_id))
        workers.start(count)
        settled = workers.wait_settled()
        before = workers.cpu_seconds()
        raw, seen = produce_watched(workers, inputs, None)
        elapsed = span_s(raw.values(), seen.enriched.values())
        cpu = [after - start for after, start in zip(workers.cpu_seconds(), before, strict=True)]
        final = workers.assigned()
    rate = len(inputs) / elapsed
    print(
        f"{count} worker{'s' if count > 1 else ''}: {len(inputs):,} touchpoints in "
        f"{elapsed:.1f} s = {rate:,.0f} touchpoints/s; assigned partitions per worker "
        f"{_counts(settled)} when settled, {_counts(final)} at the end; worker CPU "
        f"{' + '.join(f'{c:.1f}' for c in cpu)} s"
    )
    return rate


def _counts(values: list[int | None]) -> str:
    return "/".join("?" if value is None else str(value) for value in values)


def run(settings: Settings, n: int, workers: int) -> None:
    """Both configurations on the same input, then the ratio."""
    asyncio.run(prepare_topics(settings))
    inputs = simulated(n, seed=1, now=utc_now())
    print(f"machine: {describe()}")
    print(
        f"setup: Kafka {settings.kafka.version} at {settings.kafka.bootstrap}, "
        f"{settings.topics.partitions} partitions a topic, worker store {settings.worker.store}, "
        f"commit interval {settings.worker.commit_interval_s} s"
    )
    one = measure(settings, inputs, 1)
    several = measure(settings, inputs, workers)
    print(f"{workers} workers / 1 worker: {several / one:.2f}x")


def main() -> None:
    """Parse arguments, make sure the broker runs, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--touchpoints", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="workers of the second run")
    args = parser.parse_args()
    if args.touchpoints < 1 or args.workers < 2:
        parser.error("--touchpoints must be positive and --workers at least 2")
    settings = load_settings()
    with local_broker(settings):
        run(settings, args.touchpoints, args.workers)


if __name__ == "__main__":
    main()
