"""The Faust app factory and the topic definitions, from settings (no broker needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from omnijourney.settings import Settings, load_settings
from schemas.topics import DEADLETTER_TOPIC, VALID_TOPIC
from streams.app import broker_url, create_app
from streams.topics import collector_topics, pipeline_topics, raw_topic_names


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path,
        kafka={"bootstrap_servers": "k1:9092, k2:9093"},
        topics={"partitions": 6, "raw_retention_hours": 24},
        worker={
            "app_id": "oj-test",
            "port": 6077,
            "producer_linger_ms": 7,
            "producer_batch_bytes": 65_536,
            "producer_compression": "lz4",
            "fetch_partition_bytes": 2_097_152,
            "max_poll_records": 900,
            "stream_buffer": 1_000,
            "commit_every": 5_000,
        },
    )


def test_broker_url_lists_every_server() -> None:
    assert broker_url("k1:9092, k2:9093,") == "kafka://k1:9092;kafka://k2:9093"


def test_create_app_takes_everything_from_settings(settings: Settings, tmp_path: Path) -> None:
    async def build() -> None:
        app = create_app(settings)
        conf = app.conf
        assert conf.id == "oj-test"
        assert [str(url) for url in conf.broker] == ["kafka://k1:9092", "kafka://k2:9093"]
        assert (conf.web_host, conf.web_port, conf.web_bind) == ("127.0.0.1", 6077, "127.0.0.1")
        assert conf.topic_partitions == 6
        assert (conf.key_serializer, conf.value_serializer) == ("raw", "raw")
        assert str(conf.store) == "memory:"
        assert Path(conf.datadir).is_relative_to(tmp_path)
        assert (conf.producer_linger, conf.producer_max_batch_size) == (0.007, 65_536)
        assert conf.producer_compression_type == "lz4"
        assert (conf.consumer_max_fetch_size, conf.broker_max_poll_records) == (2_097_152, 900)
        assert (conf.stream_buffer_maxsize, conf.broker_commit_every) == (1_000, 5_000)

    asyncio.run(build())


def test_rocksdb_store_through_rocksdict(settings: Settings) -> None:
    on_disk = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"store": "rocksdb://"})}
    )

    async def build() -> None:
        app = create_app(on_disk)
        table = app.Table("probe", default=int, partitions=1)
        db = table.data._db_for_partition(0)  # type: ignore[attr-defined]
        db[b"key"] = b"value"
        assert db[b"key"] == b"value"

    asyncio.run(build())
    assert list(on_disk.path("worker").rglob("*probe*"))


def test_raw_topics_are_stamped_by_the_broker(settings: Settings) -> None:
    raw = collector_topics(settings)
    assert [spec.name for spec in raw] == list(raw_topic_names())
    assert len(raw) == 7
    for spec in raw:
        assert spec.partitions == 6
        assert spec.config["message.timestamp.type"] == "LogAppendTime"
        assert spec.config["retention.ms"] == str(24 * 3_600_000)


def test_pipeline_topics_add_valid_and_dead_letters(settings: Settings) -> None:
    specs = {spec.name: spec for spec in pipeline_topics(settings)}
    assert {VALID_TOPIC, DEADLETTER_TOPIC} <= set(specs)
    assert "message.timestamp.type" not in specs[VALID_TOPIC].config
    assert specs[DEADLETTER_TOPIC].config["retention.ms"] == str(30 * 24 * 3_600_000)
