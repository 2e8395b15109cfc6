"""Pure parts of the local Kafka broker: Java version, cluster id, configuration, jar stamp."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from omnijourney.local.kafka import (
    java_major,
    libs_complete,
    maven_error,
    new_cluster_id,
    server_properties,
)
from omnijourney.settings import KafkaSettings


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.2-ea" 2019-01-15', 11),
        ("no version here", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    assert java_major(output) == major


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def _props(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_server_properties_single_node_on_the_configured_ports() -> None:
    settings = KafkaSettings(port=19092, controller_port=19093, default_partitions=6)
    props = _props(server_properties(settings, Path("/data/kafka")))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == "/data/kafka"
    assert props["num.partitions"] == "6"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "default.replication.factor",
    ):
        assert props[key] == "1", key
    assert props["auto.create.topics.enable"] == "true"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_wildcard_listen_address_is_not_advertised() -> None:
    props = _props(server_properties(KafkaSettings(host="0.0.0.0"), Path("/d")))
    assert props["listeners"].startswith("PLAINTEXT://0.0.0.0:9092")
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"


def _stamp(libs: Path, release: dict[str, str], jars: list[str]) -> None:
    libs.mkdir(exist_ok=True)
    for jar in jars:
        (libs / jar).write_bytes(b"PK")
    (libs / "fetched.json").write_text(json.dumps({"release": release, "jars": jars}))


def test_libs_complete_only_for_the_same_release_with_every_jar(tmp_path: Path) -> None:
    settings = KafkaSettings()
    libs = tmp_path / "libs"
    assert not libs_complete(libs, settings), "nothing fetched yet"
    jars = ["kafka_2.13-3.9.2.jar", "kafka-clients-3.9.2.jar"]
    _stamp(libs, {"kafka": "3.9.2", "scala": "2.13"}, jars)
    assert libs_complete(libs, settings)
    assert not libs_complete(libs, KafkaSettings(version="3.9.1")), "another release"
    (libs / jars[1]).unlink()
    assert not libs_complete(libs, settings), "a jar is missing"


@pytest.mark.parametrize(("field", "value"), [("version", "latest"), ("heap", "lots"), ("port", 0)])
def test_bad_kafka_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        KafkaSettings(**{field: value})  # type: ignore[arg-type]


def test_same_broker_and_controller_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="port and controller_port must differ"):
        KafkaSettings(port=9092, controller_port=9092)


def test_maven_error_picks_the_first_error_without_colour_codes() -> None:
    output = (
        "\x1b[0m\x1b[0m[ERROR] Failed to execute goal: kafka_2.13:jar:9.9.9 was not found\n"
        "[ERROR] \n[ERROR] Re-run Maven using the -X switch\n"
    )
    assert (
        maven_error(output) == "[ERROR] Failed to execute goal: kafka_2.13:jar:9.9.9 was not found"
    )
    assert maven_error("just one line\n\n") == "just one line"
