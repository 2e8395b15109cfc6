"""Accuracy of the pure stitching core on a simulation, without Kafka: the pipeline's ceiling.

Runs `omnijourney simulate`'s behaviour model through `streams.core.Simulator` (P partitions,
seeded interleaving) and scores the result against the ground truth with the same
`omnijourney.evaluation` the demo uses on ClickHouse. A gap between this table and the demo's
says what the live pipeline loses on top of the core's own rules.

    python -m bench core_accuracy            # 2,000 customers x 14 days, P=3
    python -m bench.core_accuracy --customers 100000 --days 30 --partitions 8
    python -m bench.core_accuracy --keep-history   # no journey is ever final (see below)

The journeys are scored against the true ones and against those the evidence allows (what the
rules cut from each evidence component's touches, knowing every link in hindsight). The core
keeps a journey open only until it ends more than the largest allowed lateness (24 h) behind
the customer's watermark; a link learned after that cannot re-stitch it. `--keep-history`
makes the lateness (and dedupe horizon) longer than the simulation, so nothing is ever final:
what is left between the core and the evidence journeys is then not bounded state.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench._machine import describe
from omnijourney import evaluation
from omnijourney.exceptions import InvalidTouchpoint
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.generator import Emission, simulate
from omnijourney.simulator.truth import read_truth
from schemas.pii import PiiHasher
from schemas.validation import validate_touchpoint
from streams.convert import to_touch
from streams.core import CoreConfig, Simulator, Stitcher, Touch


def _inputs(config: SimulationConfig, hasher: PiiHasher) -> tuple[list[Touch], list[bytes]]:
    """The valid touches in sending order, and the truth lines."""
    touches: list[Touch] = []
    truth: list[bytes] = []
    for item in simulate(config, hasher):
        if not isinstance(item, Emission):
            truth.append(item.line())
            continue
        if item.kind == "malformed" or item.event is None:
            continue
        event = dict(item.event)
        event.pop("sent_at", None)  # no clock skew here: the edge would correct it away
        received = datetime.fromtimestamp(item.send_at, UTC)
        try:
            touches.append(
                to_touch(validate_touchpoint(event, received_at=received, hasher=hasher))
            )
        except InvalidTouchpoint:
            continue
    return touches, truth


def _prediction(simulator: Simulator, records: list[Any]) -> evaluation.Prediction:
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        data = record.to_dict()
        if data["record_type"] != "enriched_touchpoint":
            continue
        known = latest.get(data["event_id"])
        if known is None or data["version"] >= known["version"]:
            latest[data["event_id"]] = data
    groups: dict[str, dict[str, list[tuple[str, str]]]] = {"journey_id": {}, "session_id": {}}
    for data in latest.values():
        for field, found in groups.items():
            if data[field]:
                found.setdefault(data[field], []).append((data["occurred_at"], data["event_id"]))
    ordered = {
        field: {key: tuple(event for _, event in sorted(v)) for key, v in found.items()}
        for field, found in groups.items()
    }
    identifiers = {key: simulator.owner(key) or "" for key, _ in simulator.identifier_states()}
    return evaluation.Prediction(identifiers, ordered["journey_id"], ordered["session_id"])


def _history(days: int) -> CoreConfig:
    """The default rules with every lateness (and the dedupe horizon) past the simulation."""
    span = timedelta(days=days + 30)
    default = CoreConfig()
    channels = {
        name: dataclasses.replace(rule, allowed_lateness=span)
        for name, rule in default.channels.items()
    }
    fallback = dataclasses.replace(default.default_channel, allowed_lateness=span)
    return CoreConfig(channels=channels, default_channel=fallback, dedupe_horizon=span)


def main() -> None:
    """Simulate, stitch in-process, score, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2026, 11, 1),
        help="first simulated day (the demo's: today minus --days)",
    )
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--keep-history",
        action="store_true",
        help="allowed lateness longer than the simulation: no journey is ever final",
    )
    args = parser.parse_args()
    config = SimulationConfig(
        customers=args.customers,
        days=args.days,
        start=datetime.combine(args.start, datetime.min.time(), tzinfo=UTC),
        seed=args.seed,
        malformed_share=0.005,
        duplicate_share=0.01,
    )
    hasher = PiiHasher(b"bench-core-accuracy-key-0123456789", "US")
    touches, truth_lines = _inputs(config, hasher)
    core = _history(args.days) if args.keep_history else CoreConfig()
    simulator = Simulator(Stitcher(core), partitions=args.partitions, seed=args.seed)
    simulator.submit(touches)
    started = time.process_time()
    records = simulator.run()
    seconds = time.process_time() - started
    truth = read_truth(io.BytesIO(b"\n".join(truth_lines)))
    print(f"machine: {describe()}")
    print(
        f"{args.customers:,} customers x {args.days} days (seed {args.seed}): {len(touches):,} "
        f"touches through the core over {args.partitions} partitions in {seconds:.1f} s CPU"
        + (" (history kept: no journey final)" if args.keep_history else "")
    )
    print(evaluation.format_table(evaluation.evaluate(truth, _prediction(simulator, records))))


if __name__ == "__main__":
    main()
