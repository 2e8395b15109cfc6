"""Shared pytest setup: the suite's own local stack, and the plugins that start it once per run.

The suite runs on a data dir and ports of its own (`.omnijourney-test`, Kafka 19092, ClickHouse
18123, ...), never on the stack `make demo` / `omnijourney up` leave running: a demo's worker
would otherwise consume the tests' touchpoints, and the tests' records would land in the demo's
figures. Any OMNIJOURNEY_* variable set in the environment wins (parallel runs, CI helpers).
"""

import os
from pathlib import Path

TEST_DATA_DIR = Path(__file__).resolve().parents[1] / ".omnijourney-test"

TEST_STACK = {
    "OMNIJOURNEY_DATA_DIR": str(TEST_DATA_DIR),
    "OMNIJOURNEY_KAFKA__PORT": "19092",
    "OMNIJOURNEY_KAFKA__CONTROLLER_PORT": "19093",
    "OMNIJOURNEY_CLICKHOUSE__PORT": "18123",
    "OMNIJOURNEY_WORKER__PORT": "16066",
    "OMNIJOURNEY_SINK__HEALTH_PORT": "16067",
    "OMNIJOURNEY_COLLECTOR__PORT": "18080",
}

for _name, _value in TEST_STACK.items():
    os.environ.setdefault(_name, _value)

pytest_plugins = ["tests.plugins.kafka", "tests.plugins.clickhouse"]
