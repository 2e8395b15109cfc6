"""The worker's logging: the root logger keeps the level of the setting (no broker needed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnijourney.settings import load_settings
from streams.app import create_app
from streams.worker import faust_worker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored after the test (the worker configures it)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_root_logger_keeps_the_level_of_the_setting(
    level: str, tmp_path: Path, root_logger: logging.Logger
) -> None:
    settings = load_settings(data_dir=tmp_path, worker={"log_level": level, "port": 6078})
    loop = asyncio.new_event_loop()
    try:
        worker = faust_worker(create_app(settings), settings, loop)
        worker.redirect_stdouts = False  # pytest owns stdout; not what is tested here
        worker._setup_logging()  # what the worker does first when it starts
    finally:
        loop.close()
    assert root_logger.level == getattr(logging, level.upper())
    assert worker.spinner is None
    debug_handlers = [h for h in root_logger.handlers if h.level == logging.DEBUG]
    assert level == "debug" or not debug_handlers
