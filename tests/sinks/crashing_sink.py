"""A sink that kills itself (SIGKILL) right after ClickHouse has a batch of touchpoints and
before its offsets are committed: `python -m tests.sinks.crashing_sink` (settings from the
environment, as `child_environment` passes them)."""

from __future__ import annotations

import asyncio
import os
import signal

from omnijourney.settings import load_settings
from sinks.batches import Batch
from sinks.sink import Sink, SinkHooks


def die_after_touchpoints(batch: Batch) -> None:
    """The crash point: rows inserted, offsets not committed."""
    if "touchpoints" in batch.rows and batch.records >= 2:
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    """Run the sink with the crash hook until it dies."""
    sink = Sink(load_settings(), hooks=SinkHooks(after_insert=die_after_touchpoints))
    asyncio.run(sink.run(asyncio.Event()))


if __name__ == "__main__":
    main()
