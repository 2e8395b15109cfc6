"""Pure parts of the local Kafka cluster: node ports, node configuration, topic replication."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from omnijourney.exceptions import ConfigurationError
from omnijourney.local.admin import topic_replication
from omnijourney.local.kafka import server_properties
from omnijourney.settings import KafkaSettings


def _props(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_three_nodes_take_two_ports_each_and_bootstrap_names_them_all() -> None:
    kafka = KafkaSettings(brokers=3, port=19192, controller_port=19193)
    assert kafka.nodes() == [(1, 19192, 19193), (2, 19194, 19195), (3, 19196, 19197)]
    assert kafka.bootstrap == "127.0.0.1:19192,127.0.0.1:19194,127.0.0.1:19196"


def test_one_broker_keeps_the_single_bootstrap() -> None:
    assert KafkaSettings(port=19092).bootstrap == "127.0.0.1:19092"
    assert KafkaSettings().nodes() == [(1, 9092, 9093)]


def test_an_external_bootstrap_list_wins_over_the_local_nodes() -> None:
    kafka = KafkaSettings(brokers=3, bootstrap_servers="k1:9092,k2:9092,k3:9092")
    assert kafka.bootstrap == "k1:9092,k2:9092,k3:9092"


def test_the_default_ports_extend_to_three_nodes_without_overlap() -> None:
    ports = [p for _, b, c in KafkaSettings(brokers=3).nodes() for p in (b, c)]
    assert ports == list(range(9092, 9098))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"brokers": 3, "port": 9092, "controller_port": 9094}, "gives two nodes the same port"),
        ({"brokers": 3, "port": 65532, "controller_port": 65533}, "needs ports up to 65537"),
        ({"brokers": 0}, "brokers"),
        ({"replication_factor": 2, "min_insync_replicas": 3}, "must not exceed"),
    ],
)
def test_impossible_cluster_settings_are_refused_with_the_reason(
    fields: dict[str, int], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        KafkaSettings(**fields)  # type: ignore[arg-type]


def test_node_configuration_of_a_three_node_cluster() -> None:
    kafka = KafkaSettings(brokers=3, port=19192, controller_port=19193)
    props = _props(server_properties(kafka, Path("/d/node-2/data"), node_id=2))
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19194,CONTROLLER://127.0.0.1:19195"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19194"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19193,2@127.0.0.1:19195,3@127.0.0.1:19197"
    )
    assert props["log.dirs"] == "/d/node-2/data"
    assert props["default.replication.factor"] == "3"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["min.insync.replicas"] == "2"
    assert props["unclean.leader.election.enable"] == "false"


def test_every_node_names_the_same_voters() -> None:
    kafka = KafkaSettings(brokers=3)
    voters = {
        _props(server_properties(kafka, Path("/d"), node_id=n))["controller.quorum.voters"]
        for n in (1, 2, 3)
    }
    assert len(voters) == 1


def test_a_node_outside_the_cluster_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="node 4 is not one of the 3 local nodes"):
        server_properties(KafkaSettings(brokers=3), Path("/d"), node_id=4)


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (6, (3, 2))]
)
def test_topic_replication_follows_the_cluster_size(
    brokers: int, expected: tuple[int, int]
) -> None:
    assert topic_replication(brokers) == expected


def test_explicit_topic_replication_wins_and_is_checked() -> None:
    assert topic_replication(1, replication_factor=3) == (3, 2)
    assert topic_replication(5, replication_factor=5, min_insync_replicas=3) == (5, 3)
    with pytest.raises(ConfigurationError, match=r"min_insync_replicas \(4\) must not exceed"):
        topic_replication(3, min_insync_replicas=4)
