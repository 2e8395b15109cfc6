"""Run every benchmark in bench/ (`python -m bench`)."""

from __future__ import annotations

import importlib
import pkgutil

import bench


def main() -> None:
    """Import each bench module and run its main()."""
    for module in pkgutil.iter_modules(bench.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"bench.{module.name}").main([])


if __name__ == "__main__":
    main()
