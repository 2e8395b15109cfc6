"""`omnijourney kafka ...` as a user runs it: a subprocess with the environment as settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnijourney.local import kafka
from omnijourney.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMNIJOURNEY_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "omnijourney.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.kafka
def test_status_names_the_running_broker(kafka_settings: Settings, kafka_bootstrap: str) -> None:
    result = _cli("kafka", "status", data_dir=kafka_settings.path())
    assert result.returncode == 0, result.stderr
    assert f"running (pid {kafka.running_pid(kafka_settings)})" in result.stdout
    assert kafka_bootstrap in result.stdout


def test_status_without_a_broker_says_not_running(tmp_path: Path) -> None:
    result = _cli("kafka", "status", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Kafka is not running" in result.stdout


def test_unknown_action_is_a_usage_error(tmp_path: Path) -> None:
    result = _cli("kafka", "restart", data_dir=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'restart'" in result.stderr
