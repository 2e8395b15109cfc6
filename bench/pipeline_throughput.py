"""The whole pipeline in one worker process: sustained touchpoints/s, and latency at a fixed rate.

    PYTHONPATH=. python -m bench.pipeline_throughput [-n 50000] [--rate 1000] [--seconds 30]
        [--raw-messages 50000] [--profile]

Black box, on the local broker (started when it is not running, stopped again at the end):

* throughput: n simulated touchpoints (a week of a shop with n*4/13 customers, every channel,
  nightly till uploads; no duplicates, no garbage) are produced to the raw channel topics
  first; then a worker (`omnijourney worker`, fresh app id, settings from the environment)
  starts. The clock runs from its first output (touchpoints.valid) to the moment the last
  event has its enriched record on journeys.touchpoints (broker timestamps, distinct event ids);
* latency: other customers' touchpoints at `--rate` per second for `--seconds`, into the same
  (now warm) worker; per event, from the raw record's broker timestamp (LogAppendTime, which is
  its received_at) to the first journeys.touchpoints or journeys.updates record carrying it;
* the raw Kafka end-to-end figure of bench.kafka_throughput, measured in the same run with
  messages of the touchpoints' mean size: the pipeline's rate as a share of it.

The producer, the watcher (this process) and the worker share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from importlib.metadata import version

from bench._machine import describe
from bench._pipeline import (
    Input,
    Seen,
    Workers,
    local_broker,
    mean_size,
    output_ends,
    percentile,
    prepare_topics,
    print_profile,
    produce,
    produce_watched,
    simulated,
    span_s,
    start_group_at_end,
    utc_now,
    watch,
    worker_group,
)
from bench.kafka_throughput import end_to_end_result
from omnijourney.settings import Settings, load_settings

GOAL_RATE = 5_000
GOAL_P99_MS = 100


def throughput(workers: Workers, inputs: list[Input]) -> float:
    """Pre-produce, start one worker, time it through the backlog; touchpoints/s."""
    bootstrap = workers.settings.kafka.bootstrap
    asyncio.run(start_group_at_end(bootstrap, workers.app_id))
    starts = asyncio.run(output_ends(bootstrap))
    raw = asyncio.run(produce(bootstrap, inputs, None))
    spawned = time.time()
    workers.start(1)
    seen = asyncio.run(watch(bootstrap, starts, Seen(frozenset(raw)), workers.check))
    finished = time.time()
    (cpu,) = workers.cpu_seconds()
    last = max(seen.enriched.values())
    first = min(seen.valid.values(), default=min(seen.enriched.values()))
    elapsed = span_s([first], [last])
    rate = len(inputs) / elapsed
    print(
        f"throughput: {len(inputs):,} touchpoints in {elapsed:.1f} s = {rate:,.0f} touchpoints/s "
        f"(first output {first / 1000 - spawned:.1f} s after the worker was spawned, all "
        f"enriched {finished - spawned:.1f} s after; {seen.records:,} output records read)"
    )
    print(
        f"  worker CPU {cpu:.1f} s in those {finished - spawned:.1f} s "
        f"({cpu / (finished - spawned):.0%} of one core, start-up included)"
    )
    return rate


def latency(workers: Workers, inputs: list[Input], rate: float) -> list[float]:
    """Produce at a steady rate into the warm worker; sorted latencies in ms."""
    raw, seen = produce_watched(workers, inputs, rate)
    ordered = sorted(float(seen.first_output(e) - received) for e, received in raw.items())
    seconds = len(inputs) / rate
    print(
        f"latency at {rate:,.0f} touchpoints/s for {seconds:.0f} s ({len(ordered):,} events, "
        f"received_at -> first output): p50 {percentile(ordered, 50):.0f} ms, "
        f"p95 {percentile(ordered, 95):.0f} ms, p99 {percentile(ordered, 99):.0f} ms, "
        f"max {ordered[-1]:.0f} ms"
    )
    hops = [
        (seen.valid[e] - received, seen.first_output(e) - seen.valid[e])
        for e, received in raw.items()
        if e in seen.valid
    ]
    if hops:
        ingest = sorted(float(a) for a, _ in hops)
        stitch = sorted(float(b) for _, b in hops)
        print(
            f"  of which raw -> touchpoints.valid (ingest): p50 {percentile(ingest, 50):.0f} ms, "
            f"p99 {percentile(ingest, 99):.0f} ms; touchpoints.valid -> first public record "
            f"(identity and journeys): p50 {percentile(stitch, 50):.0f} ms, "
            f"p99 {percentile(stitch, 99):.0f} ms"
        )
    kinds = sorted(
        {f"{topic}={'LogAppendTime' if t else 'CreateTime'}" for topic, t in seen.timestamp_types}
    )
    print(f"  output timestamps: {', '.join(kinds)}")
    return ordered


def run(
    settings: Settings, n: int, rate: float, seconds: float, raw_messages: int, *, profile: bool
) -> None:
    """Every measurement, then the summary against the goals and raw Kafka."""
    bootstrap = settings.kafka.bootstrap
    now = utc_now()
    asyncio.run(prepare_topics(settings))
    backlog = simulated(n, seed=1, now=now)
    steady = simulated(round(rate * seconds), seed=2, now=now)  # other people
    size = mean_size(backlog)
    print(f"machine: {describe()}")
    print(
        f"setup: Kafka {settings.kafka.version} at {bootstrap}, {settings.topics.partitions} "
        f"partitions a topic, worker store {settings.worker.store}, commit interval "
        f"{settings.worker.commit_interval_s} s, producer linger "
        f"{settings.worker.producer_linger_ms} ms, faust-streaming {version('faust-streaming')}, "
        f"touchpoints of {size} B on average"
    )
    with worker_group(settings, "pipeline", profile=profile) as workers:
        pipeline_rate = throughput(workers, backlog)
        ordered = latency(workers, steady, rate)
    if workers.profile is not None:
        print_profile(workers.profile)
    reference = asyncio.run(
        end_to_end_result(bootstrap, raw_messages, size, settings.topics.partitions)
    )
    raw_rate = reference.messages / reference.elapsed
    print(f"raw Kafka {reference.line()} ({size} B messages)")
    print(
        f"pipeline / raw Kafka end to end: {pipeline_rate / raw_rate:.1%} "
        f"({pipeline_rate:,.0f} vs {raw_rate:,.0f} messages/s)"
    )
    rate_met = "met" if pipeline_rate >= GOAL_RATE else "NOT met"
    p99_met = "met" if percentile(ordered, 99) < GOAL_P99_MS else "NOT met"
    print(
        f"goals: >= {GOAL_RATE:,} touchpoints/s: {rate_met}; "
        f"p99 < {GOAL_P99_MS} ms at {rate:,.0f}/s: {p99_met}"
    )


def main() -> None:
    """Parse arguments, make sure the broker runs, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--touchpoints", type=int, default=50_000, help="backlog size")
    parser.add_argument("--rate", type=float, default=1_000.0, help="touchpoints/s for latency")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the latency run")
    parser.add_argument("--raw-messages", type=int, default=50_000, help="raw Kafka reference")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the worker under cProfile, print where it spends time",
    )
    args = parser.parse_args()
    if args.touchpoints < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--touchpoints, --rate and --seconds must be positive")
    settings = load_settings()
    with local_broker(settings):
        run(
            settings,
            args.touchpoints,
            args.rate,
            args.seconds,
            args.raw_messages,
            profile=args.profile,
        )


if __name__ == "__main__":
    main()
