"""Simulator throughput: pure generation, generation + Emitter (validation, hashing, JSON), Kafka.

    PYTHONPATH=. python -m bench.simulate_rate [--customers 5000] [--days 7] [--no-kafka]

Generation counts every item the simulation yields for the wire (events, duplicates,
malformed) without the truth records; "+ Emitter" adds what `simulate` does per record before
producing; "to Kafka" is the whole `simulate` path (acks=all, idempotent producer) into fresh
topics, which are deleted afterwards. Starts the local broker when none is running (and
stops it again at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
import uuid
from datetime import UTC, datetime

from bench._machine import describe
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.delivery import Pacer, Progress, Stamper, kafka_record, to_kafka
from omnijourney.simulator.generator import Emission, simulate
from schemas.channel import CHANNELS
from schemas.emitter import Emitter
from schemas.pii import PiiHasher

START = datetime(2024, 5, 1, tzinfo=UTC)
HASHER = PiiHasher(b"bench-simulate-key-0123456789abcdef", "US")


def generation(config: SimulationConfig) -> tuple[int, float]:
    """Records yielded and seconds, pure generation."""
    started = time.perf_counter()
    records = sum(isinstance(item, Emission) for item in simulate(config, HASHER))
    return records, time.perf_counter() - started


def with_emitter(config: SimulationConfig) -> tuple[int, float]:
    """Records and seconds, generation plus the Emitter's validation, hashing and encoding."""
    emitter, stamper = Emitter(HASHER), Stamper("none")
    started = time.perf_counter()
    records = 0
    for item in simulate(config, HASHER):
        if isinstance(item, Emission):
            kafka_record(item, emitter, stamper, "touchpoints")
            records += 1
    return records, time.perf_counter() - started


async def to_broker(config: SimulationConfig, bootstrap: str) -> tuple[int, float]:
    """Records and seconds of the whole path into Kafka (fresh topics, deleted afterwards)."""
    from aiokafka.admin import AIOKafkaAdminClient

    prefix = f"bench.sim.{uuid.uuid4().hex[:8]}"
    try:
        tally = await to_kafka(
            simulate(config, HASHER),
            bootstrap=bootstrap,
            emitter=Emitter(HASHER),
            stamper=Stamper("none"),
            truth=lambda record: None,
            pacer=Pacer(None),
            progress=Progress(0, 1, io.StringIO(), enabled=False),
            prefix=prefix,
        )
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([f"{prefix}.{channel}" for channel in CHANNELS])
        finally:
            await admin.close()
    return tally.records, tally.elapsed


def _line(what: str, records: int, seconds: float) -> str:
    return f"{what:<22} {records:>9,} records  {seconds:7.2f} s  {records / seconds:>9,.0f} /s"


def main() -> None:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--no-kafka", action="store_true", help="skip the broker measurement")
    args = parser.parse_args()
    config = SimulationConfig(customers=args.customers, days=args.days, start=START, seed=1)
    print(f"machine: {describe()}")
    print(f"simulation: {args.customers:,} customers x {args.days} days, seed 1")
    print(_line("generation (pure)", *generation(config)))
    print(_line("+ Emitter", *with_emitter(config)))
    if args.no_kafka:
        return
    from omnijourney.local import kafka
    from omnijourney.settings import load_settings

    settings = load_settings()
    started_here = kafka.running_pid(settings) is None and not settings.kafka.bootstrap_servers
    kafka.start(settings)
    try:
        print(
            _line("to Kafka (acks=all)", *asyncio.run(to_broker(config, settings.kafka.bootstrap)))
        )
    finally:
        if started_here:
            kafka.stop(settings)


if __name__ == "__main__":
    main()
