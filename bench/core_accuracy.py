"""Accuracy of the pure stitching core on a simulation, without Kafka: the pipeline's ceiling.

Runs `omnijourney simulate`'s behaviour model through `streams.core.Simulator` (P partitions,
seeded interleaving) and scores the result against the ground truth with the same
`omnijourney.evaluation` the demo uses on ClickHouse. A gap between this table and the demo's
says what the live pipeline loses on top of the core's own rules.

    python -m bench core_accuracy            # 2,000 customers x 14 days, P=3
    python -m bench.core_accuracy --customers 100000 --days 30 --partitions 8
"""

from __future__ import annotations

import argparse
import io
import time
from datetime import UTC, datetime
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
from streams.core import Simulator, Stitcher, Touch


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


def main() -> None:
    """Simulate, stitch in-process, score, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    config = SimulationConfig(
        customers=args.customers,
        days=args.days,
        start=datetime(2026, 11, 1, tzinfo=UTC),
        seed=args.seed,
        malformed_share=0.005,
        duplicate_share=0.01,
    )
    hasher = PiiHasher(b"bench-core-accuracy-key-0123456789", "US")
    touches, truth_lines = _inputs(config, hasher)
    simulator = Simulator(Stitcher(), partitions=args.partitions, seed=args.seed)
    simulator.submit(touches)
    started = time.process_time()
    records = simulator.run()
    seconds = time.process_time() - started
    truth = read_truth(io.BytesIO(b"\n".join(truth_lines)))
    print(f"machine: {describe()}")
    print(
        f"{args.customers:,} customers x {args.days} days (seed {args.seed}): {len(touches):,} "
        f"touches through the core over {args.partitions} partitions in {seconds:.1f} s CPU"
    )
    print(evaluation.format_table(evaluation.evaluate(truth, _prediction(simulator, records))))


if __name__ == "__main__":
    main()
