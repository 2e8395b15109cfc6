"""Shared simulations for the simulator tests (synthetic people only: example.com, 555-01xx)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.generator import Emission, simulate
from omnijourney.simulator.truth import Truth, TruthRecord, read_truth
from schemas.pii import PiiHasher

HASHER = PiiHasher(b"omnijourney-test-key-0123456789abcdef", "US")
START = datetime(2024, 5, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Run:
    """Everything one simulation yielded."""

    config: SimulationConfig
    emissions: tuple[Emission, ...]
    records: tuple[TruthRecord, ...]

    @functools.cached_property
    def truth(self) -> Truth:
        """The truth as `evaluate` reads it."""
        return read_truth(record.line() for record in self.records)

    @property
    def summary(self) -> dict[str, object]:
        """The summary record."""
        return next(r.data for r in self.records if r.type == "summary")

    def of_type(self, kind: str) -> list[dict[str, object]]:
        """Truth records of one type."""
        return [r.data for r in self.records if r.type == kind]


def run(config: SimulationConfig) -> Run:
    """Run a simulation to the end."""
    emissions, records = [], []
    for item in simulate(config, HASHER):
        (emissions if isinstance(item, Emission) else records).append(item)
    return Run(config, tuple(emissions), tuple(records))


@functools.cache
def medium() -> Run:
    """600 people over 14 days with a visible share of malformed events."""
    return run(SimulationConfig(customers=600, days=14, start=START, seed=11, malformed_share=0.02))
