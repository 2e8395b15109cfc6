"""pytest plugin: the real local Kafka broker, started once per test run."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from omnijourney.local import kafka
from omnijourney.settings import KafkaSettings, Settings, load_settings


@pytest.fixture(scope="session")
def kafka_settings() -> Settings:
    """The settings the test run's broker is started with (environment as for the CLI)."""
    return load_settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_settings: Settings) -> Iterator[str]:
    """Bootstrap address of a running broker; started here unless it is already up."""
    external = bool(kafka_settings.kafka.bootstrap_servers)
    started_here = not external and kafka.running_pid(kafka_settings) is None
    kafka.start(kafka_settings)
    yield kafka_settings.kafka.bootstrap
    # A broker the developer started before the run is theirs: leave it running.
    if started_here:
        kafka.stop(kafka_settings)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the broker binds: a port with connections in TIME_WAIT is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_base_port(first: int, nodes: int) -> int:
    """The first base port from `first` (steps of 10) whose 2 x nodes ports are all free."""
    for base in range(first, first + 800, 10):
        if all(_bindable(port) for port in range(base, base + 2 * nodes)):
            return base
    raise RuntimeError(f"no {2 * nodes} free loopback ports in {first}..{first + 800}")


@contextmanager
def local_cluster(
    kafka_settings: Settings, data_dir: Path, *, first_port: int, nodes: int = 3
) -> Iterator[Settings]:
    """Settings of a running local cluster of its own (data dir, free ports), stopped at the end.

    Its nodes reuse the jars fetched for `kafka_settings`; node k listens on base+2k and
    base+1+2k, base being the first free one from `first_port`.
    """
    kafka.fetch(kafka_settings)
    (data_dir / "kafka").mkdir(parents=True)
    (data_dir / "kafka" / "libs").symlink_to(kafka_settings.path("kafka", "libs"))
    base = free_base_port(first_port, nodes)
    fields = {
        **kafka_settings.kafka.model_dump(),
        "bootstrap_servers": "",
        "brokers": nodes,
        "port": base,
        "controller_port": base + 1,
        "heap": "256m",
    }
    settings = kafka_settings.model_copy(
        update={"data_dir": data_dir, "kafka": KafkaSettings.model_validate(fields)}
    )
    try:
        assert f"cluster of {nodes} nodes started" in kafka.start(settings)
        yield settings
    finally:
        kafka.stop(settings)
