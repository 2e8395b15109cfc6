"""`omnijourney collector` as a process: refuses to start without keys; a dev key works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.pipeline_support import PII_KEY, ROOT, free_port, fresh


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIJOURNEY_COLLECTOR__")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "OMNIJOURNEY_DATA_DIR": str(tmp_path),
        "OMNIJOURNEY_PRIVACY__PII_HASH_KEY": PII_KEY,
        **extra,
    }


def test_without_write_keys_the_collector_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "omnijourney.cli", "collector"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "no collector write keys configured" in result.stderr
    assert "OMNIJOURNEY_COLLECTOR__WRITE_KEYS" in result.stderr


@pytest.mark.kafka
def test_dev_key_is_printed_once_and_accepted(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = free_port()
    env = _env(
        tmp_path,
        OMNIJOURNEY_KAFKA__BOOTSTRAP_SERVERS=kafka_bootstrap,
        OMNIJOURNEY_COLLECTOR__PORT=str(port),
        OMNIJOURNEY_COLLECTOR__TRANSACTIONAL_ID=f"test-cli-{port}",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "omnijourney.cli", "collector", "--dev-key"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert f"listening on http://127.0.0.1:{port}" in lines[0]
        token = lines[1].rsplit(": ", 1)[1].strip()
        assert lines[1].startswith("dev write key") and token.startswith("dev_")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/touchpoints",
            data=json.dumps([fresh("pos", "purchase"), fresh("web", "page_view")]).encode(),
            headers={"Authorization": f"Bearer {token}"},
        )
        for _ in range(60):  # the first answers may be 503 while the producer connects
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 202
                    assert json.loads(response.read())["accepted"] == 2
                    break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503, exc.read()
                time.sleep(1)
        else:
            pytest.fail("the collector never accepted the request")
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "collector stopped" in out
    assert token not in out  # shown once only
