"""The identity protocol under seeded random interleavings over 1, 3 and 8 partitions."""

from __future__ import annotations

import gc
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from streams.core.config import CoreConfig
from streams.core.records import LinkRejection, Merge
from streams.core.simulation import Simulator
from streams.core.stitcher import Stitcher
from tests.core.population import people, touches
from tests.core.support import (
    check_quiescent,
    days,
    dump,
    offline_groups,
    simulate,
    simulated_groups,
)

SEEDS = range(25)
PARTITIONS = (1, 3, 8)


def _inputs(seed: int, conflicts: bool, persons: int = 25, count: int = 160) -> list:
    rng = random.Random(seed)
    return touches(rng, people(rng, persons, conflicts), count, days(2))


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_conflict_free_grouping_equals_offline_union_find(partitions: int) -> None:
    for seed in SEEDS:
        inputs = _inputs(seed, conflicts=False)
        sim = simulate(inputs, partitions, seed)
        check_quiescent(sim)
        expected = offline_groups(inputs)
        assert simulated_groups(sim) == expected, f"seed {seed} P={partitions}: groups differ"
        assert not [r for r in sim.records if isinstance(r, LinkRejection)], f"seed {seed}"


def _tight() -> Stitcher:
    """Limits of one or two per kind: most links of a person conflict with another."""
    rules = {
        kind: replace(rule, max_per_customer=1 if kind != "anonymous_id" else 2)
        for kind, rule in CoreConfig().identifiers.items()
    }
    return Stitcher(CoreConfig(identifiers=rules))


@pytest.mark.parametrize("tight", [False, True], ids=["default-limits", "tight-limits"])
@pytest.mark.parametrize("partitions", PARTITIONS)
def test_conflicts_never_break_a_limit_and_every_rejected_link_is_recorded(
    partitions: int, tight: bool
) -> None:
    stitcher = _tight() if tight else Stitcher()
    merges = rejections = 0
    for seed in SEEDS:
        inputs = _inputs(seed, conflicts=True)
        sim = simulate(inputs, partitions, seed, stitcher)  # the observer checks every step
        check_quiescent(sim)
        rejected = {
            (r.event_id, r.identifier.key) for r in sim.records if isinstance(r, LinkRejection)
        }
        for item in inputs:
            primary, *others = sorted(item.identities, key=stitcher.rank)
            for other in others:
                linked = sim.owner(other.key) == sim.owner(primary.key)
                assert linked or (item.event_id, other.key) in rejected, (
                    f"seed {seed} P={partitions}: link {primary.key} - {other.key} "
                    f"of {item.event_id} neither applied nor recorded as rejected"
                )
        merges += sum(1 for r in sim.records if isinstance(r, Merge))
        rejections += len(rejected)
    assert merges and rejections  # the inputs really exercise both paths


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_groups_do_not_depend_on_partitions_or_interleaving_without_conflicts(
    partitions: int,
) -> None:
    inputs = _inputs(99, conflicts=False, persons=40, count=300)
    reference = simulated_groups(simulate(inputs, 1, 0))
    for seed in range(10):
        shuffled = list(inputs)
        random.Random(seed).shuffle(shuffled)
        sim = simulate(shuffled, partitions, seed)
        assert simulated_groups(sim) == reference, f"seed {seed} P={partitions}"


def test_a_seed_replays_byte_for_byte() -> None:
    inputs = _inputs(7, conflicts=True)
    first = dump(simulate(inputs, 3, 7).records)
    assert dump(simulate(inputs, 3, 7).records) == first
    assert dump(simulate(inputs, 3, 8).records) != first  # another seed, another interleaving


def test_serializing_every_message_and_state_changes_nothing() -> None:
    for seed in range(4):
        inputs = _inputs(seed, conflicts=True, count=80)
        plain = simulate(inputs, 3, seed)
        through_json = simulate(inputs, 3, seed, roundtrip=True)
        check_quiescent(through_json)
        assert dump(through_json.records) == dump(plain.records), f"seed {seed}"


_DIGEST = """
import hashlib, random
from tests.core.population import people, touches
from tests.core.support import days, dump, simulate
rng = random.Random(5)
inputs = touches(rng, people(rng, 20, True), 120, days(2))
print(hashlib.sha256(dump(simulate(inputs, 3, 5).records).encode()).hexdigest())
"""


def test_outputs_do_not_depend_on_the_process_hash_seed() -> None:
    root = Path(__file__).resolve().parents[2]
    digests = set()
    for hash_seed in ("1", "2"):
        env = {"PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-c", _DIGEST],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        digests.add(done.stdout.strip())
    assert len(digests) == 1


def test_the_core_makes_no_reference_cycles() -> None:
    """Everything it builds is freed by reference counting: a worker may gc.freeze() it."""
    inputs = _inputs(3, conflicts=True, count=200)
    gc.collect()
    gc.disable()
    try:
        sim = Simulator(Stitcher(), 3, 3)
        sim.submit(inputs)
        sim.tick(max(item.occurred_at for item in inputs) + days(30))
        sim.run()
        assert any(isinstance(r, Merge) for r in sim.records)
        del sim
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.slow
@pytest.mark.parametrize("partitions", PARTITIONS)
def test_many_more_seeds(partitions: int) -> None:
    """The same checks over 100 more seeds and larger populations."""
    stitcher, tight = Stitcher(), _tight()
    for seed in range(1000, 1100):
        inputs = _inputs(seed, conflicts=False, persons=60, count=400)
        sim = simulate(inputs, partitions, seed)
        check_quiescent(sim)
        assert simulated_groups(sim) == offline_groups(inputs), f"seed {seed} P={partitions}"
        inputs = _inputs(seed, conflicts=True, persons=60, count=400)
        sim = simulate(inputs, partitions, seed, tight if seed % 2 else stitcher)
        check_quiescent(sim)
        rejected = {
            (r.event_id, r.identifier.key) for r in sim.records if isinstance(r, LinkRejection)
        }
        for item in inputs:
            primary, *others = sorted(item.identities, key=stitcher.rank)
            for other in others:
                linked = sim.owner(other.key) == sim.owner(primary.key)
                assert linked or (item.event_id, other.key) in rejected, (
                    f"seed {seed} P={partitions}: {item.event_id} {other.key}"
                )
