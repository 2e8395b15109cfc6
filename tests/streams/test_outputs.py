"""Where a stage's batched outputs go: the partition aiokafka's own keyed send would choose."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from streams.outputs import partition_of


@given(key=st.binary(max_size=64), count=st.integers(min_value=1, max_value=64))
def test_partition_is_the_default_partitioners(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_one_key_one_partition_per_partition_count() -> None:
    key = b"customer_id:CUST-000123"
    assert partition_of(key, [0, 1, 2]) == partition_of(key, [0, 1, 2])
    assert {partition_of(f"k{i}".encode(), [0, 1, 2]) for i in range(100)} == {0, 1, 2}
