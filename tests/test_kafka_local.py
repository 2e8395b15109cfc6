"""The local Kafka broker against the real thing: start, stop, status, ports, topics, data."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from omnijourney.exceptions import PortInUse
from omnijourney.local import kafka
from omnijourney.local.admin import ensure_topics, topic_partitions
from omnijourney.local.process import port_accepts
from omnijourney.settings import Settings

pytestmark = pytest.mark.kafka


def _listening_socket() -> socket.socket:
    """A socket that holds a free loopback port the OS picked (nobody else can have it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _local_copy(settings: Settings, data_dir: Path, **kafka_fields: object) -> Settings:
    """Settings of a second local broker with its own data dir and the given Kafka fields."""
    fields: dict[str, object] = {"bootstrap_servers": "", **kafka_fields}
    return settings.model_copy(
        update={"data_dir": data_dir, "kafka": settings.kafka.model_copy(update=fields)}
    )


@pytest.fixture
def held_sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = _listening_socket(), _listening_socket()
    yield a, b
    a.close()
    b.close()


# ------------------------------------------------------------------------------ round trip


async def _produce_consume(bootstrap: str, topic: str, keys: int, per_key: int) -> None:
    created = await ensure_topics(bootstrap, {topic: 3})
    assert created == [topic]
    assert await topic_partitions(bootstrap, [topic]) == {topic: 3}

    sent: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        pending = []
        for seq in range(per_key):
            for k in range(keys):
                value = f"{k}:{seq}".encode()
                pending.append((value, await producer.send(topic, value, key=f"k{k}".encode())))
        for value, future in pending:
            meta = await future
            sent[meta.partition].append((meta.offset, value))
    finally:
        await producer.stop()
    assert set(sent) == {0, 1, 2}, "30 keys must land on all 3 partitions"

    received: dict[int, list[bytes]] = defaultdict(list)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(3)])
        total = keys * per_key
        async with asyncio.timeout(30):
            while sum(map(len, received.values())) < total:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    received[tp.partition].extend(r.value for r in records if r.value)
    finally:
        await consumer.stop()

    for partition, entries in sent.items():
        in_offset_order = [value for _, value in sorted(entries)]
        assert received[partition] == in_offset_order, f"partition {partition} order"
    per_key_seen: dict[str, list[int]] = defaultdict(list)
    for values in received.values():
        for value in values:
            key, number = value.decode().split(":")
            per_key_seen[key].append(int(number))
    assert per_key_seen == {str(k): list(range(per_key)) for k in range(keys)}


def test_messages_round_trip_with_per_partition_order(kafka_bootstrap: str) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex}"
    asyncio.run(_produce_consume(kafka_bootstrap, topic, keys=30, per_key=20))


def test_ensure_topics_leaves_existing_topics_alone(kafka_bootstrap: str) -> None:
    topic = f"test.ensure.{uuid.uuid4().hex}"
    assert asyncio.run(ensure_topics(kafka_bootstrap, {topic: 2})) == [topic]
    # Asking again (even for another count) creates nothing and never changes partitions.
    assert asyncio.run(ensure_topics(kafka_bootstrap, {topic: 5})) == []
    assert asyncio.run(topic_partitions(kafka_bootstrap, [topic])) == {topic: 2}


# ------------------------------------------------------------------------- start/stop/status


def test_start_is_idempotent(kafka_settings: Settings, kafka_bootstrap: str) -> None:
    pid = kafka.running_pid(kafka_settings)
    assert pid is not None
    line = kafka.start(kafka_settings)
    assert "already running" in line
    assert f"pid {pid}" in line
    assert kafka.running_pid(kafka_settings) == pid


def test_status_reports_pid_bootstrap_and_data_dir(
    kafka_settings: Settings, kafka_bootstrap: str
) -> None:
    line = kafka.status(kafka_settings)
    assert f"running (pid {kafka.running_pid(kafka_settings)})" in line
    assert kafka_bootstrap in line
    assert str(kafka_settings.path("kafka", "data")) in line


def test_held_broker_port_gives_port_in_use(
    kafka_settings: Settings, tmp_path: Path, held_sockets: tuple[socket.socket, socket.socket]
) -> None:
    broker, controller = (s.getsockname()[1] for s in held_sockets)
    settings = _local_copy(kafka_settings, tmp_path, port=broker, controller_port=controller)
    with pytest.raises(PortInUse, match=f"Kafka broker: port 127.0.0.1:{broker} is held"):
        kafka.start(settings)
    assert kafka.running_pid(settings) is None
    assert not (tmp_path / "kafka" / "libs").exists(), "nothing fetched for a start that failed"


def test_held_controller_port_gives_port_in_use(
    kafka_settings: Settings, tmp_path: Path, held_sockets: tuple[socket.socket, socket.socket]
) -> None:
    controller = held_sockets[1].getsockname()[1]
    settings = _local_copy(kafka_settings, tmp_path, port=_free_port(), controller_port=controller)
    with pytest.raises(PortInUse, match=f"Kafka controller: port 127.0.0.1:{controller}"):
        kafka.start(settings)


def test_stop_when_not_running_says_so(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = _local_copy(kafka_settings, tmp_path)
    assert "not running" in kafka.stop(settings)
    assert "not running" in kafka.status(settings)


def test_stop_never_kills_a_process_that_is_not_our_broker(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = _local_copy(kafka_settings, tmp_path)
    other = subprocess.Popen(["sleep", "60"])
    try:
        # A stale pid file pointing at a live, unrelated process (e.g. a reused pid).
        pidfile = tmp_path / "kafka" / "broker.pid"
        pidfile.parent.mkdir(parents=True)
        pidfile.write_text(str(other.pid))
        assert "not running" in kafka.stop(settings)
        assert other.poll() is None, "the unrelated process must still run"
    finally:
        other.kill()
        other.wait()


def test_fetch_with_complete_libs_runs_no_maven(kafka_settings: Settings, tmp_path: Path) -> None:
    kafka.fetch(kafka_settings)
    settings = _local_copy(kafka_settings, tmp_path, maven="/nonexistent/mvn")
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "libs").symlink_to(kafka_settings.path("kafka", "libs"))
    assert "already in" in kafka.fetch(settings)


def test_restart_keeps_data_and_formats_storage_once(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """A second broker of our own: stop is graceful, data and cluster id survive a restart."""
    kafka.fetch(kafka_settings)
    home = tmp_path / "kafka"
    home.mkdir()
    (home / "libs").symlink_to(kafka_settings.path("kafka", "libs"))
    settings = _local_copy(
        kafka_settings, tmp_path, port=_free_port(), controller_port=_free_port(), heap="256m"
    )
    bootstrap = settings.kafka.bootstrap
    topic = f"test.restart.{uuid.uuid4().hex}"
    try:
        assert "started" in kafka.start(settings)
        cluster_id = (home / "cluster.id").read_text()
        meta = (home / "data" / "meta.properties").read_text()
        asyncio.run(_produce_one(bootstrap, topic, b"survives"))

        pid = kafka.running_pid(settings)
        assert kafka.stop(settings) == f"Kafka stopped (pid {pid})"
        assert not os.path.exists(f"/proc/{pid}")
        assert not port_accepts("127.0.0.1", settings.kafka.port)
        # Graceful: the broker ran its own shutdown instead of being killed.
        assert "[BrokerServer id=1] shut down completed" in (home / "broker.log").read_text()

        assert "started" in kafka.start(settings)
        assert (home / "cluster.id").read_text() == cluster_id
        assert (home / "data" / "meta.properties").read_text() == meta
        assert asyncio.run(_read_all(bootstrap, topic)) == [b"survives"]
    finally:
        kafka.stop(settings)


async def _produce_one(bootstrap: str, topic: str, value: bytes) -> None:
    await ensure_topics(bootstrap, {topic: 1})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        async with asyncio.timeout(30):
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=500)
                values += [r.value for r in batches.get(tp, []) if r.value is not None]
        return values
    finally:
        await consumer.stop()
