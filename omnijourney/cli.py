"""The `omnijourney` command line: local services, pipeline processes and reports."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from omnijourney.exceptions import OmnijourneyError
from omnijourney.settings import Settings, load_settings

Handler = Callable[[Settings, argparse.Namespace], int]


def _kafka(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney.local import kafka

    if args.brokers is not None:
        # The flag wins over OMNIJOURNEY_KAFKA__BROKERS; everything else still comes from the env.
        settings = load_settings(kafka={"brokers": args.brokers})
    action = {
        "fetch": kafka.fetch,
        "start": kafka.start,
        "stop": kafka.stop,
        "status": kafka.status,
    }[args.action]
    print(action(settings))
    return 0


def _clickhouse(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney.local import clickhouse

    if args.action == "serve":
        if args.store is not None:
            ch = settings.clickhouse.model_copy(update={"store_dir": args.store})
            settings = settings.model_copy(update={"clickhouse": ch})
        clickhouse.serve(settings)
        return 0
    action = {
        "start": clickhouse.start,
        "stop": clickhouse.stop,
        "status": clickhouse.status,
    }[args.action]
    print(action(settings))
    return 0


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney.local import clickhouse, kafka

    print(kafka.start(settings))
    print(clickhouse.start(settings))
    return 0


def _down(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney.local import clickhouse, kafka

    print(clickhouse.stop(settings))
    print(kafka.stop(settings))
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney.local import clickhouse, kafka

    print(kafka.status(settings))
    print(clickhouse.status(settings))
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney import demo

    return demo.run(settings)


def _schemas(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from schemas.export import write_json_schemas

    for path in write_json_schemas(Path(args.dir)):
        print(path)
    return 0


def _collector(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from omnijourney.collector.server import serve

    asyncio.run(serve(settings, allow_dev_key=args.dev_key))
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from streams.worker import run

    return run(settings)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="omnijourney", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kafka = sub.add_parser("kafka", help="the local Apache Kafka broker (KRaft)")
    kafka.add_argument(
        "action",
        choices=["fetch", "start", "stop", "status"],
        help="fetch resolves the broker's jars with Maven (start does it when needed)",
    )
    kafka.add_argument(
        "--brokers",
        type=int,
        metavar="N",
        help="nodes of the local KRaft cluster (setting kafka.brokers, default 1); "
        "stop and status always cover every node of ours",
    )
    kafka.set_defaults(handler=_kafka)

    ch = sub.add_parser("clickhouse", help="the embedded ClickHouse (chdb) HTTP server")
    ch.add_argument("action", choices=["start", "stop", "status", "serve"])
    ch.add_argument(
        "--store",
        type=Path,
        default=None,
        help="serve: the chdb store directory (overrides settings)",
    )
    ch.set_defaults(handler=_clickhouse)

    sub.add_parser("up", help="start local Kafka and embedded ClickHouse").set_defaults(handler=_up)
    sub.add_parser("down", help="stop everything `up` started").set_defaults(handler=_down)
    sub.add_parser("status", help="what runs where").set_defaults(handler=_status)
    sub.add_parser(
        "demo", help="start the stack and run the main job on the embedded defaults"
    ).set_defaults(handler=_demo)

    schemas = sub.add_parser("schemas", help="the touchpoint contract")
    schemas_sub = schemas.add_subparsers(dest="schemas_action", required=True, metavar="ACTION")
    export = schemas_sub.add_parser(
        "export", help="write JSON Schema files (producer input, validated, dead letter)"
    )
    export.add_argument("dir", metavar="DIR", help="directory to write the .schema.json files to")
    export.set_defaults(handler=_schemas)

    collector = sub.add_parser(
        "collector", help="the HTTP collector (POST /v1/touchpoints; docs at /docs)"
    )
    collector.add_argument(
        "--dev-key",
        action="store_true",
        help="with no write keys configured, generate one for every channel and print it once "
        "(loopback only)",
    )
    collector.set_defaults(handler=_collector)

    sub.add_parser(
        "worker", help="the Faust worker: ingest (validation, dead letters); /health on its port"
    ).set_defaults(handler=_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        handler: Handler = args.handler
        return handler(settings, args)
    except OmnijourneyError as exc:
        print(f"omnijourney: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
