"""The `omnijourney` command line: local services, pipeline processes and reports."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
    if args.action == "migrate":
        return _migrate(settings, args)
    action = {
        "start": clickhouse.start,
        "stop": clickhouse.stop,
        "status": clickhouse.status,
    }[args.action]
    print(action(settings))
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from sinks.migrations import migrate, script

    if args.print:
        print(script(settings, cluster=args.cluster), end="")
        return 0
    done = migrate(settings, cluster=args.cluster)
    for line in done:
        print(f"clickhouse: {line}")
    if not done:
        print(f"clickhouse: schema of {settings.clickhouse.database!r} is up to date")
    return 0


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney.local import clickhouse, kafka

    print(kafka.start(settings))
    print(clickhouse.start(settings))
    return 0


def _down(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney.demo import stop_background
    from omnijourney.local import clickhouse, kafka

    for line in stop_background(settings):
        print(line)
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

    return demo.run(
        settings,
        customers=args.customers,
        days=args.days,
        via_collector=args.via_collector,
        rate=args.rate,
    )


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


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney.simulator.command import SimulateOptions, parse_start, run

    options = SimulateOptions(
        customers=args.customers,
        days=args.days,
        start=None if args.start is None else parse_start(args.start),
        seed=args.seed,
        out_truth=args.out_truth,
        rate=args.rate,
        via_collector=args.via_collector,
        write_key=args.write_key,
        to_file=args.to_file,
        topic_prefix=args.topic_prefix,
        sent_at=args.sent_at,
        malformed_share=args.malformed_share,
        duplicate_share=args.duplicate_share,
        progress=not args.quiet,
    )
    print(run(settings, options))
    return 0


def _evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from omnijourney import evaluation
    from omnijourney.simulator.truth import read_truth

    with args.truth.open("rb") as truth_file:
        truth = read_truth(truth_file)
    if args.predicted is not None:
        with args.predicted.open("rb") as predicted_file:
            predicted = evaluation.read_prediction(predicted_file)
    else:
        predicted = _with_client(
            settings,
            lambda conn: evaluation.prediction_from_query(lambda sql: conn.query(sql).result_rows),
        )
    print(evaluation.format_table(evaluation.evaluate(truth, predicted)))
    return 0


def _html_report(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from omnijourney import html_report

    if args.truth is not None:
        with args.truth.open("rb") as truth_file:
            journeys = html_report.journeys_from_truth(truth_file)
    else:
        rows = _with_client(settings, lambda conn: conn.query(html_report.JOURNEYS_SQL).result_rows)
        journeys = html_report.journeys_from_rows(rows)
    data = html_report.write_page(
        journeys, args.html, title=args.title, generated_at=datetime.now(UTC)
    )
    print(f"wrote {args.html} ({data.journeys:,} journeys)")
    return 0


def _privacy(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from omnijourney.erasure_request import command_request, publish

    request = command_request(
        settings,
        args.identifier,
        suppress_future=args.suppress,
        request_id=args.request_id,
        requested_by=args.by,
    )
    asyncio.run(publish(settings, request))
    print(request.request_id)
    print(
        f"privacy: erasure request {request.request_id} on privacy.requests "
        f"({len(request.identifiers)} identifiers, suppress future: "
        f"{'yes' if request.suppress_future else 'no'})",
        file=sys.stderr,
    )
    return 0


def _add_privacy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    privacy = sub.add_parser("privacy", help="data subject requests (erasure)")
    actions = privacy.add_subparsers(dest="privacy_action", required=True, metavar="ACTION")
    erase = actions.add_parser(
        "erase",
        help="ask the pipeline to erase a person everywhere; prints the request id",
        description="Put an erasure request on privacy.requests. Clear email and phone values "
        "are hashed here with the configured key, as the collector hashes touchpoints.",
    )
    erase.add_argument(
        "--identifier",
        action="append",
        required=True,
        metavar="TYPE:VALUE",
        help="e.g. email:jane@example.com, phone:+15550100, loyalty_id:L-1, "
        "email_hash:<64 hex> (repeatable)",
    )
    erase.add_argument(
        "--suppress", action="store_true", help="also drop future events with these identifiers"
    )
    erase.add_argument(
        "--request-id", default=None, metavar="ID", help="retry an earlier request under its id"
    )
    erase.add_argument(
        "--by", default=None, metavar="NAME", help="who asks (default cli:<your account>)"
    )
    erase.set_defaults(handler=_privacy)


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser(
        "simulate",
        help="seeded omnichannel customers -> Kafka (or the collector), plus the ground truth",
        description="Simulate customers across web, app, stores, call center, email/SMS and "
        "CRM; send their touchpoints; write the ground truth (JSON lines) for `evaluate`.",
    )
    sim.add_argument("--customers", type=int, default=1000, help="people (default 1000)")
    sim.add_argument("--days", type=int, default=7, help="simulated days (default 7)")
    sim.add_argument(
        "--start",
        default=None,
        help="first simulated day, YYYY-MM-DD in UTC (default: the last --days days)",
    )
    sim.add_argument("--seed", type=int, default=1, help="same seed, same events (default 1)")
    sim.add_argument(
        "--out-truth",
        type=Path,
        default=None,
        metavar="FILE",
        help="ground truth file (default <data_dir>/simulation/truth-seed<N>.jsonl)",
    )
    sim.add_argument(
        "--rate", type=float, default=None, help="records per second (default: as fast as possible)"
    )
    sim.add_argument(
        "--via-collector", default=None, metavar="URL", help="POST to the HTTP collector instead"
    )
    sim.add_argument("--write-key", default=None, metavar="KEY", help="collector write key")
    sim.add_argument(
        "--to-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the Kafka records (topic, key, value per line) instead of producing them",
    )
    sim.add_argument(
        "--topic-prefix",
        default="touchpoints",
        help="produce to <prefix>.<channel> (default touchpoints)",
    )
    sim.add_argument(
        "--sent-at",
        choices=["wall", "simulated", "none"],
        default="wall",
        help="sent_at stamped by the sender: the real clock (default), the simulated upload "
        "time (byte-identical runs; right only in real time), or none",
    )
    sim.add_argument("--malformed-share", type=float, default=0.005)
    sim.add_argument("--duplicate-share", type=float, default=0.01)
    sim.add_argument("--quiet", action="store_true", help="no progress line")
    sim.set_defaults(handler=_simulate)

    ev = sub.add_parser(
        "evaluate",
        help="score what the pipeline produced against a simulation's ground truth",
    )
    ev.add_argument("--truth", type=Path, required=True, metavar="FILE")
    ev.add_argument(
        "--predicted",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON lines: {type: identifier, id, customer} and {type: journey|session, id, "
        "events} (default: read what the pipeline wrote to ClickHouse)",
    )
    ev.set_defaults(handler=_evaluate)


def _sink(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from sinks.sink import Sink

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        sink = Sink(settings)
        print(
            f"sink: {', '.join(settings.sink.topics)} -> {settings.clickhouse.url} "
            f"database {settings.clickhouse.database!r}, group {settings.sink.group_id!r}",
            flush=True,
        )
        await sink.run(stop)
        print(f"sink: stopped after {sink.stats.batches} batches", flush=True)

    asyncio.run(main())
    return 0


def _report(settings: Settings, args: argparse.Namespace) -> int:
    if args.html is not None:
        return _html_report(settings, args)
    return _saved_report(settings, args)


def _saved_report(settings: Settings, args: argparse.Namespace) -> int:
    from sinks import reports

    if args.list or args.name is None:
        print(reports.catalogue(reports.load_queries()), end="")
        return 0
    query = reports.saved_query(args.name)
    params = reports.parse_params(args.param)
    reports.bind(query, params)  # refuse unknown parameters before connecting
    result = _with_client(settings, lambda conn: reports.run_report(conn, query, params))
    print(reports.render(result, args.format), end="")
    return 0


def _query(settings: Settings, args: argparse.Namespace) -> int:
    from sinks import reports

    params = reports.parse_params(args.param)
    result = _with_client(settings, lambda conn: reports.run_sql(conn, args.sql, params))
    print(reports.render(result, args.format), end="")
    return 0


def _with_client(settings: Settings, work: Callable[[Any], Any]) -> Any:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from omnijourney.exceptions import ReportError
    from sinks.clickhouse import client

    try:
        conn = client(settings, autogenerate_session_id=False)
    except ClickHouseError as exc:
        raise ReportError(f"cannot reach ClickHouse at {settings.clickhouse.url}: {exc}") from None
    try:
        return work(conn)
    finally:
        conn.close()


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="output format (default: an aligned table)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a query parameter, e.g. --param days=7 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="omnijourney", description=__doc__)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="root of all local state (overrides OMNIJOURNEY_DATA_DIR)",
    )
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
    ch.add_argument(
        "action",
        choices=["start", "stop", "status", "serve", "migrate"],
        help="migrate applies the versioned schema of the sink (any ClickHouse, idempotent)",
    )
    ch.add_argument(
        "--store",
        type=Path,
        default=None,
        help="serve: the chdb store directory (overrides settings)",
    )
    ch.add_argument(
        "--cluster",
        default=None,
        metavar="NAME",
        help="migrate: replicated local tables, Distributed tables and views ON CLUSTER NAME "
        "(overrides setting clickhouse.cluster; default: one server)",
    )
    ch.add_argument(
        "--print",
        action="store_true",
        help="migrate: write the SQL to stdout instead of running it (no connection)",
    )
    ch.set_defaults(handler=_clickhouse)

    sub.add_parser("up", help="start local Kafka and embedded ClickHouse").set_defaults(handler=_up)
    sub.add_parser("down", help="stop everything `up` started").set_defaults(handler=_down)
    sub.add_parser("status", help="what runs where").set_defaults(handler=_status)
    demo = sub.add_parser(
        "demo", help="start the stack and run the main job on the embedded defaults"
    )
    demo.add_argument("--customers", type=int, default=2000, help="simulated people (2000)")
    demo.add_argument("--days", type=int, default=14, help="simulated days (14)")
    demo.add_argument(
        "--via-collector",
        action="store_true",
        help="also start the HTTP collector and send the simulation through it",
    )
    demo.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="N",
        help="records per second to send (default: as fast as possible)",
    )
    demo.set_defaults(handler=_demo)

    sub.add_parser(
        "sink", help="copy the public topics into ClickHouse (consumer group; Ctrl-C stops)"
    ).set_defaults(handler=_sink)

    report = sub.add_parser(
        "report",
        help="run a saved query against ClickHouse (--list shows them), or --html FILE",
    )
    report.add_argument("name", nargs="?", help="saved query (see --list)")
    report.add_argument("--list", action="store_true", help="list saved queries and parameters")
    report.add_argument(
        "--html", type=Path, default=None, metavar="FILE", help="write the journeys as one page"
    )
    report.add_argument(
        "--truth",
        type=Path,
        default=None,
        metavar="FILE",
        help="--html: draw a simulation's ground truth instead of ClickHouse's journeys",
    )
    report.add_argument("--title", default="omnijourney: customer journeys")
    _output_options(report)
    report.set_defaults(handler=_report)

    query = sub.add_parser("query", help="run any SQL against the configured ClickHouse")
    query.add_argument("sql", metavar="SQL", help='e.g. "SELECT count() FROM touchpoints"')
    _output_options(query)
    query.set_defaults(handler=_query)

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
    _add_simulate(sub)
    _add_privacy(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        overrides = {} if args.data_dir is None else {"data_dir": args.data_dir}
        settings = load_settings(**overrides)
        handler: Handler = args.handler
        return handler(settings, args)
    except OmnijourneyError as exc:
        print(f"omnijourney: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
