"""The writer against the real embedded ClickHouse: alias flattening at a realistic batch size."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client

from omnijourney.settings import Settings
from schemas.contracts import record_from
from sinks.batches import Batch
from sinks.clickhouse import client
from sinks.migrations import migrate
from sinks.rows import rows_of
from sinks.writer import Writer, id_chunks
from streams.core.ids import customer_id
from tests.sinks.story import merge

pytestmark = pytest.mark.clickhouse

PEOPLE = 1_500
"""People of the test: each merges three customer ids, so a batch names 3,000 ids (~130 KB
as a URL parameter: far beyond any request line, and more than one chunk of ids)."""


@pytest.fixture
def fresh(clickhouse_settings: Settings) -> Iterator[tuple[Settings, Client]]:
    """Settings and a client of a new, migrated database (dropped at the end)."""
    name = f"wr_{uuid.uuid4().hex[:10]}"
    settings = clickhouse_settings.model_copy(
        update={"clickhouse": clickhouse_settings.clickhouse.model_copy(update={"database": name})}
    )
    migrate(settings)
    conn = client(settings, autogenerate_session_id=False)
    try:
        yield settings, conn
    finally:
        conn.command(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def _ids(person: int) -> tuple[str, str, str]:
    """The oldest, middle and newest customer id of one person (real id format, 33 chars)."""
    key = f"anonymous_id:ck-{person}"
    oldest, middle, newest = (customer_id(key, (person + day * 10**7) * 10**6) for day in (1, 2, 3))
    assert oldest < middle < newest  # the survivor of a merge is the smaller id
    return oldest, middle, newest


def _merges(pairs: list[tuple[str, str]], topic_offset: int) -> Batch:
    """One sink batch of merges (survivor, alias) of the identity.merges topic."""
    batch = Batch("identity.merges", 0, 0.0)
    for index, (survivor, alias) in enumerate(pairs):
        record = merge(survivor, alias, "anonymous_id", f"ck-{index}", f"e-{topic_offset}-{index}")
        batch.add(topic_offset + index, rows_of(record_from(record)), 100)
    return batch


def test_thousands_of_aliases_are_flattened_in_one_batch(fresh: tuple[Settings, Client]) -> None:
    settings, conn = fresh
    people = [_ids(person) for person in range(PEOPLE)]
    writer = Writer(settings)
    try:
        # newest -> middle first; then middle -> oldest: every newest id must be re-pointed
        # to the oldest (its survivor is now itself an alias), through the batch's 3,000 ids.
        writer.write(_merges([(middle, newest) for _, middle, newest in people], 0))
        second = _merges([(oldest, middle) for oldest, middle, _ in people], PEOPLE)
        assert len(second.alias_ids()) == 2 * PEOPLE
        writer.write(second)
        writer.write(second)  # a retry of the same batch adds nothing
    finally:
        writer.close()
    answer = conn.query("SELECT alias_id, survivor_id FROM customer_alias_map").result_rows
    resolved = {str(alias): str(survivor) for alias, survivor in answer}
    assert resolved == {
        alias: oldest for oldest, middle, newest in people for alias in (middle, newest)
    }
    re_pointed = conn.query(
        "SELECT alias_id, survivor_id FROM customer_aliases WHERE NOT direct"  # each once
    ).result_rows
    assert sorted(tuple(row) for row in re_pointed) == sorted(
        (newest, oldest) for oldest, _, newest in people
    )


def test_id_chunks_keep_every_id_once_within_the_budget() -> None:
    ids = [f"c{i:032x}" for i in range(5_000)]
    chunks = id_chunks(ids, budget=4_096)
    assert [i for chunk in chunks for i in chunk] == ids
    assert len(chunks) > 1
    assert all(sum(len(i) + 3 for i in chunk) <= 4_096 for chunk in chunks)
    assert id_chunks([], budget=4_096) == []
