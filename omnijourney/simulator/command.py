"""`omnijourney simulate`: options, where things go, and the closing summary."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from omnijourney.exceptions import ConfigurationError, TransientError
from omnijourney.settings import Settings
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.delivery import (
    Clock,
    Pacer,
    Progress,
    ProgressSink,
    SentAt,
    Stamper,
    Tally,
    to_collector,
    to_file,
    to_kafka,
    utc_now,
)
from omnijourney.simulator.generator import simulate
from omnijourney.simulator.truth import TruthRecord
from schemas.emitter import Emitter
from schemas.keystore import hasher_from_settings
from schemas.topics import TOPIC_PREFIX


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    """The command line of `omnijourney simulate`."""

    customers: int = 1000
    days: int = 7
    start: datetime | None = None
    """None: the last `days` whole days before today (UTC)."""
    seed: int = 1
    out_truth: Path | None = None
    rate: float | None = None
    via_collector: str | None = None
    write_key: str | None = None
    to_file: Path | None = None
    topic_prefix: str = TOPIC_PREFIX
    sent_at: SentAt = "wall"
    malformed_share: float = 0.005
    duplicate_share: float = 0.01
    progress: bool = True


def parse_start(text: str) -> datetime:
    """`YYYY-MM-DD` (midnight UTC) or an RFC 3339 time with an offset; naive times refused."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"--start: {text!r} is not a date (YYYY-MM-DD) or a time with an offset"
        ) from None
    if value.tzinfo is None:
        raise ConfigurationError("--start: a time needs an offset such as Z or +02:00")
    return value.astimezone(UTC)


def default_start(days: int, now: datetime) -> datetime:
    """Midnight UTC `days` days before today: the simulation ends where today starts."""
    today = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    return today - timedelta(days=days)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a simulation sent and where its truth is."""

    tally: Tally
    summary: dict[str, Any]
    """The truth's summary record."""
    truth_path: Path
    report: str
    """The closing summary to print."""


def run(
    settings: Settings,
    options: SimulateOptions,
    *,
    clock: Clock = utc_now,
    stderr: IO[str] | None = None,
) -> str:
    """Run a simulation to its destination; the summary to print."""
    return simulate_to(settings, options, clock=clock, stderr=stderr).report


def simulate_to(
    settings: Settings,
    options: SimulateOptions,
    *,
    clock: Clock = utc_now,
    stderr: IO[str] | None = None,
    progress: ProgressSink | None = None,
) -> Outcome:
    """Run a simulation to its destination (progress: to `progress`, or a line on stderr)."""
    now = clock()
    start = options.start or default_start(options.days, now)
    config = SimulationConfig(
        customers=options.customers,
        days=options.days,
        start=start,
        seed=options.seed,
        malformed_share=options.malformed_share,
        duplicate_share=options.duplicate_share,
    )
    if options.sent_at == "wall" and config.end_ts + 6 * 3600 > now.timestamp():
        raise ConfigurationError(
            "with --sent-at wall the simulated days must be over (end before now - 6 h, for the "
            "nightly uploads): the edge would move later events to now; choose an earlier "
            "--start or fewer --days"
        )
    if options.via_collector and options.to_file:
        raise ConfigurationError("--via-collector and --to-file exclude each other")
    if options.via_collector and not options.write_key:
        raise ConfigurationError("--via-collector needs --write-key")
    hasher = hasher_from_settings(settings)
    truth_path = options.out_truth or settings.path("simulation", f"truth-seed{config.seed}.jsonl")
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    stamper = Stamper(options.sent_at, clock)
    if progress is None:
        progress = Progress(config.start_ts, config.end_ts, stderr, enabled=options.progress)
    items = simulate(config, hasher)
    summary: dict[str, Any] = {}
    partial = truth_path.with_name(truth_path.name + ".partial")
    with partial.open("wb") as truth_file:

        def keep(record: TruthRecord) -> None:
            truth_file.write(record.line())
            if record.type == "summary":
                summary.update(record.data)

        try:
            tally = _deliver(
                settings,
                options,
                items,
                keep=keep,
                stamper=stamper,
                progress=progress,
                hasher=hasher,
            )
        except BaseException:
            partial.unlink()  # a truth without its events would mislead `evaluate`
            raise
    partial.replace(truth_path)
    report = _report(options, tally, summary, truth_path, config)
    return Outcome(tally, summary, truth_path, report)


def _deliver(
    settings: Settings,
    options: SimulateOptions,
    items: Any,
    *,
    keep: Callable[[TruthRecord], None],
    stamper: Stamper,
    progress: ProgressSink,
    hasher: Any,
) -> Tally:
    if options.to_file is not None:
        options.to_file.parent.mkdir(parents=True, exist_ok=True)
        with options.to_file.open("wb") as out:
            return to_file(
                items,
                out,
                emitter=Emitter(hasher),
                stamper=stamper,
                truth=keep,
                progress=progress,
                prefix=options.topic_prefix,
            )
    pacer = Pacer(options.rate)
    if options.via_collector:
        assert options.write_key is not None
        return asyncio.run(
            to_collector(
                items,
                url=options.via_collector,
                write_key=options.write_key,
                stamper=stamper,
                truth=keep,
                pacer=pacer,
                progress=progress,
            )
        )
    from aiokafka.errors import KafkaConnectionError

    try:
        return asyncio.run(
            to_kafka(
                items,
                bootstrap=settings.kafka.bootstrap,
                emitter=Emitter(hasher),
                stamper=stamper,
                truth=keep,
                pacer=pacer,
                progress=progress,
                prefix=options.topic_prefix,
                partitions=settings.kafka.default_partitions,
            )
        )
    except KafkaConnectionError:
        raise TransientError(
            f"cannot reach Kafka at {settings.kafka.bootstrap}: start the local broker with "
            "`omnijourney kafka start` (or set OMNIJOURNEY_KAFKA__BOOTSTRAP_SERVERS)"
        ) from None


def _report(
    options: SimulateOptions,
    tally: Tally,
    summary: dict[str, Any],
    truth_path: Path,
    config: SimulationConfig,
) -> str:
    if options.to_file is not None:
        where = f"file {options.to_file}"
    elif options.via_collector:
        where = f"collector {options.via_collector}"
    else:
        where = f"Kafka topics {options.topic_prefix}.<channel>"
    rate = tally.records / tally.elapsed if tally.elapsed > 0 else 0.0
    lines = [
        f"simulated {config.customers:,} customers over {config.days} days from "
        f"{config.start.date().isoformat()} (seed {config.seed})",
        f"sent {tally.records:,} records to {where} in {tally.elapsed:.1f} s ({rate:,.0f}/s): "
        f"{tally.events:,} events, {tally.duplicates:,} duplicates, {tally.malformed:,} malformed",
        f"late (nightly till uploads): {summary.get('late_events', 0):,}; journeys: "
        f"{summary.get('journeys', 0):,} ({summary.get('journeys_converted', 0):,} converted, "
        f"{summary.get('journeys_ropo', 0):,} research-online-purchase-offline); online "
        f"session conversion {summary.get('online_conversion_rate', 0) * 100:.1f}%",
        f"identifiers: {summary.get('identifiers', 0):,} ({summary.get('shared_identifiers', 0)} "
        f"shared); identifier pairs linkable by the evidence: "
        f"{summary.get('achievable_pairs', 0):,} of {summary.get('true_pairs', 0):,}",
        f"ground truth: {truth_path}",
    ]
    if options.via_collector:
        lines.insert(2, f"collector accepted {tally.accepted:,}, refused {tally.rejected:,}, "
                        f"retries {tally.retries:,}")  # fmt: skip
    return "\n".join(lines)
