"""pytest plugin: the real local Kafka broker, started once per test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omnijourney.local import kafka
from omnijourney.settings import Settings, load_settings


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
