"""Run every benchmark in bench/ in turn: `python -m bench [name ...]`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(names: list[str]) -> int:
    """Run the named benchmark modules (default: all), each through its main()."""
    here = Path(__file__).parent
    modules = pkgutil.iter_modules([str(here)])
    available = sorted(m.name for m in modules if not m.name.startswith("_"))
    chosen = names or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    for name in chosen:
        print(f"\n=== bench.{name}")
        module = importlib.import_module(f"bench.{name}")
        sys.argv = [f"bench.{name}"]  # each benchmark parses its own (default) arguments
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
