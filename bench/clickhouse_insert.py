"""Insert throughput of clickhouse-connect into the embedded ClickHouse server.

Run: PYTHONPATH=. python -m bench.clickhouse_insert [--rows 1000000] [--batch 100000]

Starts the embedded server when it is not running (and stops it afterwards), inserts into a
scratch database that is dropped at the end, and prints rows/s per variant with the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
import uuid
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.compression import get_compressor
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform

from omnijourney.local import clickhouse
from omnijourney.settings import load_settings
from sinks.clickhouse import client

COLUMNS = {
    "id": "UInt64",
    "event_id": "String",
    "customer_id": "String",
    "channel": "LowCardinality(String)",
    "type": "LowCardinality(String)",
    "occurred_at": "DateTime64(3, 'UTC')",
    "amount": "Float64",
    "quantity": "UInt16",
    "store_id": "Nullable(UInt32)",
    "tags": "Array(String)",
}
CHANNELS = ["web", "app", "pos", "callcenter", "email", "sms"]
TYPES = ["page_view", "product_view", "add_to_cart", "purchase", "return", "call"]


def batch_columns(rows: int) -> list[list[Any]]:
    """One batch of touchpoint-like rows, column-oriented."""
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [
        list(range(rows)),
        [uuid.UUID(int=i).hex for i in range(rows)],
        [f"cust-{i % 50_000:06d}" for i in range(rows)],
        [CHANNELS[i % len(CHANNELS)] for i in range(rows)],
        [TYPES[(i * 7) % len(TYPES)] for i in range(rows)],
        [start + dt.timedelta(milliseconds=i * 13) for i in range(rows)],
        [(i % 10_000) / 100 for i in range(rows)],
        [i % 17 for i in range(rows)],
        [None if i % 5 == 0 else i % 900 for i in range(rows)],
        [["promo", "vip"][: i % 3] for i in range(rows)],
    ]


def machine() -> str:
    """nproc and CPU model of this machine."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def timed(label: str, rows: int, action: Callable[[], None]) -> None:
    """Run action once and print its rows/s."""
    began = time.perf_counter()
    action()
    elapsed = time.perf_counter() - began
    print(f"  {label:<52} {rows / elapsed:>12,.0f} rows/s  ({elapsed:6.2f} s)")


def encoded_body(table: str, columns: list[list[Any]], compression: str | None) -> bytes:
    """The Native insert body clickhouse-connect would send (built once, outside the timing)."""
    from clickhouse_connect.datatypes.registry import get_from_name

    context = InsertContext(
        table,
        list(COLUMNS),
        [get_from_name(kind) for kind in COLUMNS.values()],
        data=columns,
        column_oriented=True,
        compression=compression,
    )
    chunks = list(NativeTransform().build_insert(context))
    first = chunks[0]
    if compression is None:
        chunks[0] = first[first.index(b"\n") + 1 :]  # the statement goes in the URL instead
        return b"".join(chunks)
    # A compressed body carries the statement in its first frame: rebuild it without.
    raw = NativeTransform().build_insert(
        InsertContext(
            table,
            list(COLUMNS),
            [get_from_name(kind) for kind in COLUMNS.values()],
            data=columns,
            column_oriented=True,
        )
    )
    blocks = list(raw)
    blocks[0] = blocks[0][blocks[0].index(b"\n") + 1 :]
    compressor = get_compressor(compression)
    return b"".join(bytes(compressor.compress_block(block)) for block in blocks)


def run(total: int, batch: int) -> None:
    """Insert total rows in batches with and without compression; print the figures."""
    settings = load_settings()
    started = clickhouse.process(settings).pid() is None
    print(clickhouse.start(settings))
    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = client(settings, database="default")
    admin.command(f"CREATE DATABASE {database}")
    columns = batch_columns(batch)
    batches = max(1, total // batch)
    rows = batches * batch
    print(
        f"embedded ClickHouse {admin.server_version} (chdb {version('chdb')}), "
        f"clickhouse-connect {version('clickhouse-connect')}"
    )
    print(f"machine: {machine()}")
    print(f"{rows:,} rows of {len(COLUMNS)} columns in batches of {batch:,}:")
    try:
        for compress in (False, "lz4", "zstd"):
            ch = client(settings, database=database, compress=compress)
            table = f"t_{compress or 'none'}"
            kinds = ", ".join(f"`{name}` {kind}" for name, kind in COLUMNS.items())
            ch.command(f"CREATE TABLE {table} ({kinds}) ENGINE = MergeTree ORDER BY id")

            def insert_all(ch: Client = ch, table: str = table) -> None:
                for _ in range(batches):
                    ch.insert(table, columns, column_names=list(COLUMNS), column_oriented=True)

            timed(f"client.insert, compress={compress}", rows, insert_all)
            assert ch.command(f"SELECT count() FROM {table}") == rows
            ch.close()
        for compression in (None, "lz4"):
            ch = client(settings, database=database)
            table = f"raw_{compression or 'none'}"
            ch.command(f"CREATE TABLE {table} AS t_none")
            body = encoded_body(table, columns, compression)

            def raw_all(
                ch: Client = ch,
                table: str = table,
                body: bytes = body,
                codec: str | None = compression,
            ) -> None:
                for _ in range(batches):
                    ch.raw_insert(table, list(COLUMNS), body, fmt="Native", compression=codec)

            timed(
                f"raw_insert of pre-encoded Native, {compression or 'uncompressed'}", rows, raw_all
            )
            assert ch.command(f"SELECT count() FROM {table}") == rows
            ch.close()
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database}")
        admin.close()
        if started:
            print(clickhouse.stop(settings))


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args()
    run(args.rows, args.batch)


if __name__ == "__main__":
    main()
