"""A real three-node local KRaft cluster: start, replication, a broker SIGKILLed mid-stream, stop.

The cluster gets its own data dir and ports from 19192 upwards that are checked to be free, so
it never meets the default single broker (9092) that other test runs may use.
Run alone with `pytest -m cluster`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from omnijourney.collector.server import build
from omnijourney.local import kafka, kafka_cluster
from omnijourney.local.admin import ensure_topics
from omnijourney.local.process import port_accepts, wait_until
from omnijourney.settings import Settings
from tests.pipeline_support import Worker, collector_settings
from tests.plugins.kafka import local_cluster

pytestmark = [pytest.mark.kafka, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[1]
NODES = 3
TOTAL = 3000  # messages produced through the broker kill
BATCH = 50
KILL_AFTER = 1000  # acknowledged messages before the SIGKILL


@pytest.fixture(scope="module")
def cluster(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of a running three-node cluster of its own (stopped at the end)."""
    data_dir = tmp_path_factory.mktemp("cluster")
    with local_cluster(kafka_settings, data_dir, first_port=19192, nodes=NODES) as settings:
        yield settings


# --------------------------------------------------------------------------------- helpers


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


async def _partitions(bootstrap: str, topic: str) -> list[dict[str, object]]:
    """The topic's partitions as the cluster describes them, once every one has a leader."""
    admin = await _admin(bootstrap)
    try:
        # The broker asked may learn of a new topic a moment after the one that created it.
        async with asyncio.timeout(30):
            while True:
                [described] = await admin.describe_topics([topic])
                partitions: list[dict[str, object]] = described["partitions"]
                if partitions and all(int(str(p["leader"])) >= 0 for p in partitions):
                    return sorted(partitions, key=lambda p: int(str(p["partition"])))
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _configs(bootstrap: str, resource: ConfigResource) -> dict[str, str]:
    admin = await _admin(bootstrap)
    try:
        responses = await admin.describe_configs([resource])
    finally:
        await admin.close()
    # One resource asked, one answered: (error code, message, type, name, [config entries]).
    [(_, _, _, _, entries)] = responses[0].resources
    return {entry[0]: entry[1] for entry in entries}


async def _settled_configs(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[str, str]:
    """The topic's configs once the broker answering knows the topic (KRaft metadata lags)."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        configs = await _configs(bootstrap, resource)
        if configs or asyncio.get_running_loop().time() > deadline:
            return configs
        await asyncio.sleep(0.5)


async def _produce_through_kill(
    settings: Settings, topic: str, victim: int
) -> dict[bytes, tuple[int, int]]:
    """Produce TOTAL messages with acks=all, SIGKILLing node `victim` after KILL_AFTER acks."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap,
        acks="all",
        enable_idempotence=True,  # a retry after the failover never writes a message twice
        linger_ms=5,
        request_timeout_ms=40000,
        retry_backoff_ms=200,
    )
    acked: dict[bytes, tuple[int, int]] = {}
    await producer.start()
    try:
        for first in range(0, TOTAL, BATCH):
            pending = []
            for seq in range(first, first + BATCH):
                value = f"m{seq:05d}".encode()
                pending.append((value, await producer.send(topic, value, key=value)))
            for value, future in pending:
                meta = await future
                acked[value] = (meta.partition, meta.offset)
            if len(acked) == KILL_AFTER:
                await asyncio.to_thread(kafka_cluster.kill_node, settings, victim)
            await asyncio.sleep(0.01)
    finally:
        await producer.stop()
    return acked


async def _consume_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every record in the topic, read without a group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[int, int, bytes]] = []
        async with asyncio.timeout(60):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, batch in batches.items():
                    records += [(tp.partition, r.offset, r.value or b"") for r in batch]
        return records
    finally:
        await consumer.stop()


def _isr_sizes(bootstrap: str, topic: str) -> list[int]:
    return [len(p["isr"]) for p in asyncio.run(_partitions(bootstrap, topic))]  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- tests


def test_three_nodes_run_from_their_own_dirs_and_status_lists_each(cluster: Settings) -> None:
    pids = kafka_cluster.running_pids(cluster)
    assert sorted(pids) == [1, 2, 3]
    assert kafka_cluster.live_broker_ids(cluster.kafka.bootstrap) == {1, 2, 3}
    home = cluster.path("kafka", "cluster")
    meta = [(home / f"node-{n}" / "data" / "meta.properties").read_text() for n in (1, 2, 3)]
    cluster_ids = {line for text in meta for line in text.splitlines() if "cluster.id" in line}
    assert len(cluster_ids) == 1, "one cluster id shared by every node"
    for n, text in enumerate(meta, start=1):
        assert f"node.id={n}" in text
    status = kafka.status(cluster)
    assert "3 of 3 running" in status
    for nid, port, controller in cluster.kafka.nodes():
        line = f"node {nid}: running (pid {pids[nid]}), broker 127.0.0.1:{port}, "
        assert line + f"controller 127.0.0.1:{controller}" in status


def test_start_again_changes_nothing(cluster: Settings) -> None:
    before = kafka_cluster.running_pids(cluster)
    assert kafka.start(cluster).startswith("Kafka cluster already running")
    assert kafka_cluster.running_pids(cluster) == before


def test_ensure_topics_replicates_three_times_with_min_isr_two(cluster: Settings) -> None:
    bootstrap = cluster.kafka.bootstrap
    topic = f"test.cluster.rf.{uuid.uuid4().hex}"
    assert asyncio.run(ensure_topics(bootstrap, {topic: 3})) == [topic]
    partitions = asyncio.run(_partitions(bootstrap, topic))
    assert [sorted(p["replicas"]) for p in partitions] == [[1, 2, 3]] * 3  # type: ignore[type-var]
    topic_config = asyncio.run(_settled_configs(bootstrap, topic))
    assert topic_config["min.insync.replicas"] == "2"
    broker = asyncio.run(_configs(bootstrap, ConfigResource(ConfigResourceType.BROKER, "2")))
    assert broker["offsets.topic.replication.factor"] == "3"
    assert broker["transaction.state.log.replication.factor"] == "3"
    assert broker["transaction.state.log.min.isr"] == "2"


def test_the_pipeline_creates_its_topics_with_three_replicas(
    cluster: Settings, tmp_path: Path
) -> None:
    """The collector's, the worker's and Faust's changelog topics survive a lost broker."""
    bootstrap = cluster.kafka.bootstrap
    settings = collector_settings(cluster, bootstrap)

    async def connect() -> None:
        collector, _ = build(settings)
        await collector.delivery.start()
        try:
            assert await collector.delivery.wait_connected(60), collector.delivery.last_error
        finally:
            await collector.delivery.stop()

    asyncio.run(connect())
    worker = Worker(bootstrap, tmp_path / "worker")
    try:
        worker.wait_healthy()
    finally:
        worker.stop()
    changelog = f"{worker.group_id}-omnijourney-customers-changelog"
    for topic in ("touchpoints.web", "touchpoints.valid", "journeys.updates", changelog):
        partitions = asyncio.run(_partitions(bootstrap, topic))
        assert [len(p["replicas"]) for p in partitions] == [3] * 3, topic  # type: ignore[arg-type]
        assert asyncio.run(_settled_configs(bootstrap, topic))["min.insync.replicas"] == "2"


def test_no_acknowledged_message_is_lost_when_a_broker_is_killed(cluster: Settings) -> None:
    bootstrap = cluster.kafka.bootstrap
    topic = f"test.cluster.kill.{uuid.uuid4().hex}"
    asyncio.run(ensure_topics(bootstrap, {topic: 3}))
    # Kill the leader of partition 0, so at least one partition must fail over mid-stream.
    victim = int(str(asyncio.run(_partitions(bootstrap, topic))[0]["leader"]))
    survivors = {nid: pid for nid, pid in kafka_cluster.running_pids(cluster).items()}
    del survivors[victim]

    acked = asyncio.run(_produce_through_kill(cluster, topic, victim))
    assert len(acked) == TOTAL
    assert sorted(kafka_cluster.running_pids(cluster)) == sorted(survivors), "victim is dead"

    # Read back from the two survivors: every acknowledged message exactly once, where acked.
    records = asyncio.run(_consume_all(bootstrap, topic, 3))
    assert Counter(value for _, _, value in records).most_common(1)[0][1] == 1, "a duplicate"
    assert {value: (p, o) for p, o, value in records} == acked

    # `start` brings back only the missing node, which catches up into every ISR.
    line = kafka.start(cluster)
    assert line.startswith(f"Kafka cluster: started node {victim} pid ")
    after = kafka_cluster.running_pids(cluster)
    assert sorted(after) == [1, 2, 3]
    assert {nid: after[nid] for nid in survivors} == survivors, "survivors were not restarted"
    wait_until(lambda: _isr_sizes(bootstrap, topic) == [3, 3, 3], 60, "the ISR to be whole again")


def test_kill_and_start_one_node_helpers(cluster: Settings) -> None:
    pid = kafka_cluster.kill_node(cluster, 3)
    assert not os.path.exists(f"/proc/{pid}")
    assert "node 3: not running" in kafka.status(cluster)
    assert kafka_cluster.start_node(cluster, 3).startswith("Kafka node 3 started (pid ")
    assert kafka_cluster.live_broker_ids(cluster.kafka.bootstrap) == {1, 2, 3}


def test_cli_status_without_the_flag_shows_the_running_cluster(cluster: Settings) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMNIJOURNEY_DATA_DIR": str(cluster.data_dir),
        "OMNIJOURNEY_KAFKA__PORT": str(cluster.kafka.port),
        "OMNIJOURNEY_KAFKA__CONTROLLER_PORT": str(cluster.kafka.controller_port),
        "OMNIJOURNEY_KAFKA__BOOTSTRAP_SERVERS": "",
    }
    env.pop("OMNIJOURNEY_KAFKA__BROKERS", None)
    result = subprocess.run(
        [sys.executable, "-m", "omnijourney.cli", "kafka", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "local cluster of 3 nodes" in result.stdout
    assert "3 of 3 running" in result.stdout


def test_stop_stops_every_node_of_ours(cluster: Settings) -> None:
    """Last in this module: the fixture's own stop is then a no-op."""
    pids = kafka_cluster.running_pids(cluster)
    line = kafka.stop(cluster)
    assert line.startswith("Kafka cluster stopped (")
    for nid, pid in pids.items():
        assert f"node {nid} pid {pid}" in line
        assert not os.path.exists(f"/proc/{pid}")
    assert kafka_cluster.running_pids(cluster) == {}
    for _, port, controller in cluster.kafka.nodes():
        assert not port_accepts("127.0.0.1", port)
        assert not port_accepts("127.0.0.1", controller)
    assert "not running (no broker of ours to stop)" in kafka.stop(cluster)
