"""Fixtures of the worker tests: one worker subprocess per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pipeline_support import Worker


@pytest.fixture(scope="module")
def worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A healthy `omnijourney worker` on the test broker, with its own group and data dir."""
    worker = Worker(kafka_bootstrap, tmp_path_factory.mktemp("worker"))
    try:
        worker.wait_healthy()
        yield worker
    finally:
        worker.stop()
