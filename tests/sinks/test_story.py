"""The scripted story flows from Kafka through the sink into ClickHouse; every view and saved
query gives the hand-computed answer (see tests/sinks/story.py for the story)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from omnijourney.cli import main
from omnijourney.settings import Settings
from sinks.reports import Result, plain, run_report, saved_query
from sinks.sink import Sink, SinkStats
from tests.sinks import story as s
from tests.sinks.support import (
    CORE_SAMPLE,
    counts,
    create_topics,
    dead_letter_message,
    doubled,
    isolated,
    messages,
    prepare,
    produce,
    raw_message,
    run_until,
    settled,
)

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

PRODUCED = len(s.story()) + len(s.broken()) + 1


@dataclass
class Loaded:
    """The story, in ClickHouse."""

    settings: Settings
    conn: Client
    stats: SinkStats


@pytest.fixture(scope="module")
def loaded(kafka_bootstrap: str, clickhouse_settings: Settings) -> Iterator[Loaded]:
    settings = isolated(clickhouse_settings)
    conn = prepare(settings)

    async def load() -> SinkStats:
        await create_topics(settings)
        items = messages(settings, s.story())
        items += [raw_message(settings, kind, value) for kind, value in s.broken()]
        items.append(dead_letter_message(settings, s.ingest_dead_letter()))
        await produce(settings, items)
        sink = Sink(settings)
        await run_until(sink, lambda: settled(sink, PRODUCED), 120, "the story in ClickHouse")
        return sink.stats

    stats = asyncio.run(load())
    try:
        yield Loaded(settings, conn, stats)
    finally:
        conn.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")
        conn.close()


def norm(value: Any) -> Any:
    """Values as plain comparable data: times as 'YYYY-MM-DD hh:mm:ss', decimals as text."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [norm(v) for v in value]
    return value


def report(loaded: Loaded, name: str, **params: Any) -> list[dict[str, Any]]:
    result: Result = run_report(
        loaded.conn, saved_query(name), {k: str(v) for k, v in params.items()}
    )
    return [
        {col: norm(val) for col, val in zip(result.columns, row, strict=True)}
        for row in result.rows
    ]


def column(loaded: Loaded, sql: str) -> list[Any]:
    return [norm(row[0]) for row in loaded.conn.query(sql).result_rows]


# ---------------------------------------------------------------- landing


def test_every_record_lands_exactly_once(loaded: Loaded) -> None:
    # FINAL keeps the latest version of a key: Dee's re-placed touch, session and journey
    # versions collapse; Ann's device touch stays twice (written under two customer ids)
    assert counts(loaded.conn, final=True) == {
        "touchpoints": 21,
        "sessions": 5,
        "journeys": 10,
        "identity_links": 6,
        "identity_merges": 2,
        "identity_rejections": 1,
        "customer_aliases": 3,  # two merges and the re-pointed DEVICE -> ANN
        "dead_letters": 3,
        "anonymous_touchpoints": 1,  # counted, linked to nobody
    }
    # Merges are stopped in the test database, so without FINAL every row inserted shows,
    # but versions of a key that arrive in one insert may already collapse on insert
    # (optimize_on_insert): versioned tables hold between the FINAL count and every record,
    # and no (key, version) twice.
    plain_counts = counts(loaded.conn)
    for table, low, high in (("touchpoints", 21, 22), ("sessions", 5, 8), ("journeys", 10, 17)):
        assert low <= plain_counts.pop(table) <= high, table
    assert plain_counts == {
        "identity_links": 6,
        "identity_merges": 2,
        "identity_rejections": 1,
        "customer_aliases": 3,
        "dead_letters": 3,
        "anonymous_touchpoints": 1,
    }
    assert doubled(loaded.conn) == {}
    assert loaded.stats.records == PRODUCED
    assert loaded.stats.dead_letters == 2


def test_analysts_segment_journeys_on_marketing_consent(loaded: Loaded) -> None:
    marketing = "SELECT journey_id FROM journeys FINAL WHERE consent_marketing ORDER BY journey_id"
    assert column(loaded, marketing) == ["JF"]
    # a visitor without analytics consent is counted anonymously, with no identifier anywhere
    anonymous = loaded.conn.query(
        "SELECT channel, type, properties FROM anonymous_touchpoints"
    ).result_rows
    assert anonymous == [("web", "product_view", {"product_id": "P-7"})]
    assert column(loaded, "SELECT count() FROM touchpoints WHERE event_id = 'z1'") == [0]


def test_broken_records_become_dead_letters_with_reason_and_field(loaded: Loaded) -> None:
    rows = loaded.conn.query(
        "SELECT stage, reason, error_locs, source_topic != '', original_size > 0 "
        "FROM dead_letters ORDER BY stage, reason"
    ).result_rows
    assert rows == [
        ("ingest", "missing_field", ["type"], False, True),
        ("sink", "missing_field", ["customer_id"], True, True),
        ("sink", "not_json", [""], True, True),
    ]


def test_current_views_keep_the_latest_version(loaded: Loaded) -> None:
    assert column(loaded, "SELECT count() FROM touchpoints_current") == [20]
    assert column(
        loaded,
        "SELECT (customer_id, recorded_customer_id, journey_id, position, version) "
        "FROM touchpoints_current WHERE event_id = 'a3'",
    ) == [[s.ANN, s.ANN, "JA", 3, 10]]
    assert column(loaded, "SELECT session_id FROM touchpoints_current WHERE event_id = 'd2'") == [
        "s-JDee-2"
    ]
    assert column(loaded, "SELECT journey_id FROM journeys_current ORDER BY 1") == [
        "JA", "JB", "JB2", "JC", "JDee", "JE1", "JE2", "JE3", "JF",
    ]  # fmt: skip
    assert column(
        loaded,
        f"SELECT session_id FROM sessions_current WHERE customer_id = '{s.ANN}' ORDER BY 1",
    ) == ["SA1", "SA2", "SA3"]
    assert column(
        loaded, "SELECT (status, final) FROM journeys_current WHERE journey_id = 'JA'"
    ) == [["converted", True]]


def test_aliases_are_flat(loaded: Loaded) -> None:
    assert column(
        loaded, "SELECT (alias_id, survivor_id) FROM customer_alias_map ORDER BY alias_id"
    ) == [[s.COOKIE, s.ANN], [s.DEVICE, s.ANN]]
    assert column(
        loaded,
        "SELECT (alias_id, survivor_id, direct) FROM customer_aliases "
        "ORDER BY alias_id, survivor_id",
    ) == [[s.COOKIE, s.ANN, True], [s.DEVICE, s.ANN, False], [s.DEVICE, s.COOKIE, True]]


# ---------------------------------------------------------------- single customer view

SCV = {
    s.ANN: {
        "identifiers": [
            ["anonymous_id", "ck-1"],
            ["customer_id", "ann"],
            ["device_id", "dv-1"],
            ["email_hash", s.ANN_EMAIL_HASH],
        ],
        "aliases": [s.COOKIE, s.DEVICE],
        "channels": ["app", "pos", "web"],
        "first_touch_at": "2026-03-02 10:00:00",
        "first_channel": "web",
        "last_touch_at": "2026-03-04 15:00:00",
        "last_channel": "pos",
        "touches": 5,
        "purchases": 1,
        "purchase_value": "120",
        "purchases_by_channel": {"pos": 1},
        "value_by_channel": {"pos": "120"},
        "currencies": ["EUR"],
    },
    s.BOB: {
        "identifiers": [["customer_id", "bob"]],
        "aliases": [],
        "channels": ["app", "callcenter"],
        "first_touch_at": "2026-03-03 09:00:00",
        "first_channel": "app",
        "last_touch_at": "2026-03-03 14:00:00",
        "last_channel": "callcenter",
        "touches": 4,
        "purchases": 1,
        "purchase_value": "50",
        "purchases_by_channel": {"app": 1},
        "value_by_channel": {"app": "50"},
        "currencies": ["EUR"],
    },
    s.CID: {
        "identifiers": [["loyalty_id", "L-3"]],  # the rejected claim on "ann" is not his
        "aliases": [],
        "channels": ["pos"],
        "first_touch_at": "2026-03-05 12:00:00",
        "first_channel": "pos",
        "last_touch_at": "2026-03-05 12:00:00",
        "last_channel": "pos",
        "touches": 1,
        "purchases": 1,
        "purchase_value": "80",
        "purchases_by_channel": {"pos": 1},
        "value_by_channel": {"pos": "80"},
        "currencies": ["EUR"],
    },
    s.DEE: {
        "identifiers": [],
        "aliases": [],
        "channels": ["app", "web"],
        "first_touch_at": "2026-03-06 08:00:00",
        "first_channel": "web",
        "last_touch_at": "2026-03-07 20:00:00",
        "last_channel": "app",
        "touches": 3,
        "purchases": 0,
        "purchase_value": "0",
        "purchases_by_channel": {},
        "value_by_channel": {},
        "currencies": [],
    },
    s.EVE: {
        "identifiers": [],
        "aliases": [],
        "channels": ["pos", "web"],
        "first_touch_at": "2026-03-01 10:00:00",
        "first_channel": "web",
        "last_touch_at": "2026-03-11 20:00:00",
        "last_channel": "web",
        "touches": 3,
        "purchases": 2,
        "purchase_value": "60",
        "purchases_by_channel": {"pos": 1, "web": 1},
        "value_by_channel": {"pos": "40", "web": "20"},
        "currencies": ["EUR"],
    },
    s.FAY: {
        "identifiers": [],
        "aliases": [],
        "channels": ["email", "web"],
        "first_touch_at": "2026-03-07 09:00:00",  # the late email click is earlier
        "first_channel": "email",
        "last_touch_at": "2026-03-08 12:00:00",
        "last_channel": "web",
        "touches": 4,
        "purchases": 1,
        "purchase_value": "30",
        "purchases_by_channel": {"web": 1},
        "value_by_channel": {"web": "30"},
        "currencies": ["EUR"],
    },
}


def test_single_customer_view(loaded: Loaded) -> None:
    rows = {row.pop("customer_id"): row for row in report(loaded, "customer")}
    assert rows == SCV


def test_rows_of_merged_customers_count_under_the_survivor(loaded: Loaded) -> None:
    # written under the cookie and the device, before the merges
    assert column(loaded, "SELECT DISTINCT customer_id FROM touchpoints ORDER BY 1") == [
        s.ANN,
        s.BOB,
        s.CID,
        s.DEE,
        s.COOKIE,
        s.EVE,
        s.FAY,
        s.DEVICE,
    ]
    # ...and yet the single customer view knows only Ann, whichever id one asks with
    for asked in (s.ANN, s.COOKIE, s.DEVICE, "ck-1", "dv-1", "ann"):
        rows = report(loaded, "customer", customer=asked)
        assert [row["customer_id"] for row in rows] == [s.ANN], asked
        assert rows[0]["touches"] == 5
    assert report(loaded, "customer", customer="nobody") == []


# ---------------------------------------------------------------- paths, funnel, ROPO


def test_journey_paths(loaded: Loaded) -> None:
    assert report(loaded, "paths") == [
        {"path": "web", "journeys": 3, "conversions": 2, "conversion_rate": 0.6667,
         "conversion_value": "50"},
        {"path": "pos", "journeys": 2, "conversions": 2, "conversion_rate": 1.0,
         "conversion_value": "120"},
        {"path": "app", "journeys": 1, "conversions": 1, "conversion_rate": 1.0,
         "conversion_value": "50"},
        {"path": "web > app > pos", "journeys": 1, "conversions": 1, "conversion_rate": 1.0,
         "conversion_value": "120"},
        {"path": "callcenter", "journeys": 1, "conversions": 0, "conversion_rate": 0.0,
         "conversion_value": "0"},
        {"path": "web > app", "journeys": 1, "conversions": 0, "conversion_rate": 0.0,
         "conversion_value": "0"},
    ]  # fmt: skip
    closed = [row["path"] for row in report(loaded, "paths", closed_only=1)]
    assert closed == ["web", "pos", "app", "web > app > pos", "web > app"]
    assert len(report(loaded, "paths", limit=2)) == 2


def test_funnel_within_a_week(loaded: Loaded) -> None:
    # web product views: Ann, Dee, Eve, Fay; carts after them: Ann (app, 55 min), Fay (30 min);
    # purchases after the cart: Ann (store, 52 h later), Fay (web, 1.5 h later)
    assert report(loaded, "funnel") == [
        {"step": 1, "name": "product_view (web)", "customers": 4, "conversion_from_previous": 1.0,
         "conversion_from_start": 1.0, "avg_hours_from_previous": None,
         "median_hours_from_previous": None},
        {"step": 2, "name": "add_to_cart", "customers": 2, "conversion_from_previous": 0.5,
         "conversion_from_start": 0.5, "avg_hours_from_previous": 0.71,
         "median_hours_from_previous": 0.71},
        {"step": 3, "name": "purchase", "customers": 2, "conversion_from_previous": 1.0,
         "conversion_from_start": 0.5, "avg_hours_from_previous": 26.75,
         "median_hours_from_previous": 26.75},
    ]  # fmt: skip


def test_funnel_within_a_day(loaded: Loaded) -> None:
    # Ann's store purchase comes two days after her product view: she stops at the cart
    steps = report(loaded, "funnel", window_days=1)
    assert [row["customers"] for row in steps] == [4, 2, 1]
    assert steps[2]["conversion_from_start"] == 0.25
    assert steps[2]["avg_hours_from_previous"] == 1.5


def test_research_online_purchase_offline(loaded: Loaded) -> None:
    # store purchases: Ann (app cart 52 h before), Cid (never online), Eve (web view 10 days before)
    assert report(loaded, "ropo", days=7) == [
        {"store_purchases": 3, "researched_online": 1, "share": 0.3333, "last_seen_on_web": 0,
         "last_seen_on_app": 1, "researched_value": "120", "store_value": "240",
         "median_hours_online_to_store": 52.0},
    ]  # fmt: skip
    assert report(loaded, "ropo", days=14) == [
        {"store_purchases": 3, "researched_online": 2, "share": 0.6667, "last_seen_on_web": 1,
         "last_seen_on_app": 1, "researched_value": "160", "store_value": "240",
         "median_hours_online_to_store": 146.0},
    ]  # fmt: skip


# ---------------------------------------------------------------- attribution


def _decay(hours_before: list[float], half_life_h: float = 168.0) -> list[float]:
    weights = [2 ** (-h / half_life_h) for h in hours_before]
    return [w / sum(weights) for w in weights]


def test_channel_attribution(loaded: Loaded) -> None:
    # conversions and the touches before them:
    #   Ann (120): web 53 h, web 52 h 55 min, app 52 h 40 min, app 52 h before the store purchase
    #   Bob (50): app, app; Fay (30): web, web; Cid (80), Eve (40): the store purchase alone;
    #   Eve (20): the web purchase alone
    ann = _decay([53.0, 52 + 55 / 60, 52 + 40 / 60, 52.0])
    web_share, app_share = ann[0] + ann[1], ann[2] + ann[3]
    rows = {row.pop("channel"): row for row in report(loaded, "attribution")}
    assert list(rows) == ["web", "pos", "app"]  # by linear credit
    assert rows["pos"] == {
        "first_touch": 2.0, "last_touch": 2.0, "linear": 2.0, "time_decay": 2.0,
        "value_first_touch": 120.0, "value_last_touch": 120.0, "value_linear": 120.0,
        "value_time_decay": 120.0,
    }  # fmt: skip
    web, app = rows["web"], rows["app"]
    assert (web["first_touch"], web["last_touch"], web["linear"]) == (3.0, 2.0, 2.5)
    assert (app["first_touch"], app["last_touch"], app["linear"]) == (1.0, 2.0, 1.5)
    assert (web["value_first_touch"], web["value_last_touch"], web["value_linear"]) == (
        170.0,
        50.0,
        110.0,
    )
    assert (app["value_first_touch"], app["value_last_touch"], app["value_linear"]) == (
        50.0,
        170.0,
        110.0,
    )
    assert web["time_decay"] == round(2 + web_share, 4)
    assert app["time_decay"] == round(1 + app_share, 4)
    assert web["value_time_decay"] == round(50 + 120 * web_share, 2)
    assert app["value_time_decay"] == round(50 + 120 * app_share, 2)
    # each conversion hands out exactly one credit per model
    for model in ("first_touch", "last_touch", "linear", "time_decay"):
        assert round(sum(row[model] for row in rows.values()), 3) == 6.0


def test_time_decay_half_life_is_a_parameter(loaded: Loaded) -> None:
    short = {
        r["channel"]: r["time_decay"] for r in report(loaded, "attribution", half_life_days=0.5)
    }
    ann = _decay([53.0, 52 + 55 / 60, 52 + 40 / 60, 52.0], half_life_h=12.0)
    assert short["app"] == round(1 + ann[2] + ann[3], 4)


# ---------------------------------------------------------------- segments


def test_segments(loaded: Loaded) -> None:
    month = {r["segment"]: r["customers"] for r in report(loaded, "segments", as_of="2026-03-12")}
    assert month == {
        "online_never_store": 3,  # Bob, Dee, Fay
        "store_only": 1,  # Cid
        "researched_online_bought_in_store": 2,  # Ann, Eve
        "omnichannel_buyers": 1,  # Eve (store and web)
        "browsers_no_purchase": 1,  # Dee
    }
    week = {
        r["segment"]: (r["customers"], r["share_of_customers"])
        for r in report(loaded, "segments", as_of="2026-03-12T00:00:00Z", days=7)
    }
    assert week["online_never_store"] == (2, 0.3333)  # Dee, Fay: Ann and Bob were online earlier
    assert week["browsers_no_purchase"] == (1, 0.1667)


def test_segment_members(loaded: Loaded) -> None:
    assert report(loaded, "online_never_store", as_of="2026-03-12") == [
        {"customer_id": s.FAY, "online_touches": 3, "last_online_at": "2026-03-08 12:00:00",
         "purchases": 1, "purchase_value": "30"},
        {"customer_id": s.DEE, "online_touches": 3, "last_online_at": "2026-03-07 20:00:00",
         "purchases": 0, "purchase_value": "0"},
        {"customer_id": s.BOB, "online_touches": 3, "last_online_at": "2026-03-03 09:30:00",
         "purchases": 1, "purchase_value": "50"},
    ]  # fmt: skip


# ---------------------------------------------------------------- command line


@pytest.fixture
def cli_env(loaded: Loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIJOURNEY_CLICKHOUSE__DATABASE", loaded.settings.clickhouse.database)


@pytest.mark.usefixtures("cli_env")
def test_report_command_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "ropo", "--param", "days=14"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "store_purchases", "researched_online", "share", "last_seen_on_web", "last_seen_on_app",
        "researched_value", "store_value", "median_hours_online_to_store",
    ]  # fmt: skip
    assert lines[2].split() == ["3", "2", "0.6667", "1", "1", "160", "240", "146"]
    assert lines[-1] == "(1 row)"


@pytest.mark.usefixtures("cli_env")
def test_report_command_json_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "paths", "--format", "json", "--param", "limit=1"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"path": "web", "journeys": 3, "conversions": 2, "conversion_rate": 0.6667,
         "conversion_value": "50"},
    ]  # fmt: skip
    assert main(["report", "customer", "--format", "csv", "--param", f"customer={s.CID}"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.startswith("customer_id,identifiers,aliases,channels,first_touch_at")
    assert row.startswith(
        f'{s.CID},"[[""loyalty_id"",""L-3""]]",[],"[""pos""]",2026-03-05 12:00:00'
    )


@pytest.mark.usefixtures("cli_env")
def test_query_command_runs_any_sql(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "SELECT count() AS n FROM touchpoints_current", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "n\n20\n"
    sql = "SELECT customer_id FROM single_customer_view WHERE touches > {n:UInt32} ORDER BY 1"
    assert main(["query", sql, "--param", "n=3", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"customer_id": s.ANN}, {"customer_id": s.BOB}, {"customer_id": s.FAY},
    ]  # fmt: skip


@pytest.mark.usefixtures("cli_env")
def test_bad_reports_fail_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "nonsense"]) == 1
    assert "no report 'nonsense'; known: attribution, customer" in capsys.readouterr().err
    assert main(["report", "ropo", "--param", "weeks=2"]) == 1
    assert "has no parameter weeks (parameters: days)" in capsys.readouterr().err
    assert main(["report", "ropo", "--param", "days=soon"]) == 1
    assert "days" in capsys.readouterr().err
    assert main(["query", "SELECT nope FROM touchpoints"]) == 1
    assert "UNKNOWN_IDENTIFIER" in capsys.readouterr().err


def test_dead_letters_report(loaded: Loaded) -> None:
    # the sink's own dead letters were received now; the ingest one on 2026-03-09
    recent = report(loaded, "dead_letters")
    assert [(r["stage"], r["reason"], r["letters"]) for r in recent] == [
        ("sink", "missing_field", 1),
        ("sink", "not_json", 1),
    ]
    everything = report(loaded, "dead_letters", days=100_000)
    assert sorted((r["stage"], r["reason"]) for r in everything) == [
        ("ingest", "missing_field"),
        ("sink", "missing_field"),
        ("sink", "not_json"),
    ]


def test_records_of_the_real_core_resolve_to_one_customer(
    kafka_bootstrap: str, clickhouse_settings: Settings
) -> None:
    # tests/sinks/data/core_sample.jsonl: a cookie and a device merge into one customer
    settings = isolated(clickhouse_settings)
    conn = prepare(settings)
    try:
        records = [json.loads(line) for line in CORE_SAMPLE.read_text().splitlines()]

        async def load() -> None:
            await create_topics(settings)
            await produce(settings, messages(settings, records))
            sink = Sink(settings)
            await run_until(sink, lambda: settled(sink, len(records)), 120, "the core sample")

        asyncio.run(load())
        assert doubled(conn) == {}
        rows = run_report(conn, saved_query("customer"), {})
        assert len(rows.rows) == 1
        scv = dict(zip(rows.columns, rows.rows[0], strict=True))
        merged = {r["alias_id"] for r in records if r["record_type"] == "merge"}
        assert set(scv["aliases"]) == merged and len(merged) == 2
        assert scv["touches"] == 6 and scv["purchases"] == 1
        assert norm(scv["value_by_channel"]) == {"pos": "120"}
        assert sorted(kind for kind, _ in scv["identifiers"]) == [
            "anonymous_id",
            "customer_id",
            "device_id",
        ]
        path = run_report(conn, saved_query("paths"), {}).rows
        assert [(p[0], p[1], p[2]) for p in path] == [("web > app > web > app > pos", 1, 1)]
    finally:
        conn.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")
        conn.close()
