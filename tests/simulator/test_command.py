"""`omnijourney simulate` as a command: files, determinism, refusals, the CLI parser."""

from __future__ import annotations

import io
import socket
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from omnijourney.cli import build_parser
from omnijourney.exceptions import ConfigurationError, TransientError
from omnijourney.settings import PrivacySettings, Settings, load_settings
from omnijourney.simulator.command import SimulateOptions, default_start, parse_start, run
from omnijourney.simulator.truth import read_truth
from tests.pipeline_support import free_port

NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


def _settings(tmp_path: Path) -> Settings:
    privacy = PrivacySettings(pii_hash_key=SecretStr("simulator-test-key-0123456789abcdef"))
    return load_settings(data_dir=tmp_path / "data", privacy=privacy)


def _to_file(tmp_path: Path, name: str, **options: object) -> tuple[bytes, bytes, str]:
    events, truth = tmp_path / f"{name}.tsv", tmp_path / f"{name}.truth.jsonl"
    chosen: dict[str, object] = {"sent_at": "simulated", **options}
    opts = SimulateOptions(
        customers=60,
        days=4,
        start=datetime(2024, 5, 6, tzinfo=UTC),
        to_file=events,
        out_truth=truth,
        progress=False,
        **chosen,  # type: ignore[arg-type]
    )
    report = run(_settings(tmp_path), opts, clock=lambda: NOW, stderr=io.StringIO())
    return events.read_bytes(), truth.read_bytes(), report


def test_same_seed_same_files(tmp_path: Path) -> None:
    events, truth, report = _to_file(tmp_path, "a", seed=3)
    again_events, again_truth, _ = _to_file(tmp_path, "b", seed=3)
    assert events == again_events and truth == again_truth
    other, _, _ = _to_file(tmp_path, "c", seed=4)
    assert other != events
    assert "simulated 60 customers over 4 days from 2024-05-06 (seed 3)" in report
    lines = events.splitlines()
    assert lines and all(line.split(b"\t")[0].startswith(b"touchpoints.") for line in lines)
    assert b"@" not in events and b"@" not in truth
    parsed = read_truth(truth.splitlines())
    assert parsed.meta["seed"] == 3 and parsed.summary["events"] > 0


def test_sent_at_modes_change_only_sent_at(tmp_path: Path) -> None:
    simulated, _, _ = _to_file(tmp_path, "s", seed=3)
    wall, _, _ = _to_file(tmp_path, "w", seed=3, sent_at="wall")
    none, _, _ = _to_file(tmp_path, "n", seed=3, sent_at="none")
    assert b'"sent_at":"2026-03-10T15:30:00Z"' in wall and b'"sent_at"' not in none
    assert len(simulated.splitlines()) == len(wall.splitlines()) == len(none.splitlines())


def test_wall_clock_stamps_need_days_that_are_over(tmp_path: Path) -> None:
    opts = SimulateOptions(customers=5, days=3, start=datetime(2026, 3, 9, tzinfo=UTC))
    with pytest.raises(ConfigurationError, match="simulated days must be over"):
        run(_settings(tmp_path), opts, clock=lambda: NOW)


def test_collector_needs_a_write_key_and_excludes_a_file(tmp_path: Path) -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    opts = SimulateOptions(customers=5, days=1, start=start, via_collector="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="--write-key"):
        run(_settings(tmp_path), opts, clock=lambda: NOW)
    opts = SimulateOptions(
        customers=5, days=1, start=start, via_collector="http://x", write_key="k", to_file=tmp_path
    )
    with pytest.raises(ConfigurationError, match="exclude each other"):
        run(_settings(tmp_path), opts, clock=lambda: NOW)


def test_an_unreachable_broker_is_named_and_leaves_no_truth(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    kafka = settings.kafka.model_copy(update={"port": _free_port()})
    settings = settings.model_copy(update={"kafka": kafka})
    truth = tmp_path / "truth.jsonl"
    opts = SimulateOptions(
        customers=5, days=1, start=datetime(2024, 5, 1, tzinfo=UTC), out_truth=truth
    )
    with pytest.raises(TransientError, match="cannot reach Kafka"):
        run(settings, opts, clock=lambda: NOW, stderr=io.StringIO())
    assert list(tmp_path.glob("truth.jsonl*")) == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_start_dates() -> None:
    assert parse_start("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_start("2024-05-01T02:00:00+02:00") == datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="offset"):
        parse_start("2024-05-01T02:00:00")
    with pytest.raises(ConfigurationError, match="not a date"):
        parse_start("May 1st")
    assert default_start(7, NOW) == datetime(2026, 3, 3, tzinfo=UTC)


def test_cli_arguments() -> None:
    args = build_parser().parse_args(
        ["simulate", "--customers", "50", "--seed", "9", "--rate", "500", "--sent-at", "none"]
    )
    assert (args.customers, args.seed, args.rate, args.sent_at) == (50, 9, 500.0, "none")
    assert args.days == 7 and args.topic_prefix == "touchpoints"
    args = build_parser().parse_args(["evaluate", "--truth", "t", "--predicted", "p"])
    assert args.truth == Path("t")


def test_evaluate_and_report_commands_on_a_truth_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from omnijourney.cli import main

    _, truth_bytes, _ = _to_file(tmp_path, "t", seed=8)
    truth_path = tmp_path / "t.truth.jsonl"
    truth = read_truth(truth_bytes.splitlines())
    # a pipeline that got everything right: one customer per person, the true journeys
    lines = [
        orjson.dumps({"type": "identifier", "id": ident, "customer": f"cust-{person}"})
        for ident, person in truth.identifiers.items()
    ]
    lines += [
        orjson.dumps({"type": "journey", "id": f"j{n}", "events": list(events)})
        for n, events in enumerate(truth.journeys.values())
    ]
    predicted = tmp_path / "predicted.jsonl"
    predicted.write_bytes(b"\n".join(lines))
    monkeypatch.setenv("OMNIJOURNEY_DATA_DIR", str(tmp_path / "data"))
    assert main(["evaluate", "--truth", str(truth_path), "--predicted", str(predicted)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[1].split() == ["precision", "1.0000"]
    assert "0 (must be 0)" in table
    assert f"{len(truth.journeys):,} of {len(truth.journeys):,} true" in table

    page = tmp_path / "report.html"
    assert main(["report", "--html", str(page), "--truth", str(truth_path)]) == 0
    assert "Channel transitions in journeys" in page.read_text(encoding="utf-8")
    # Without --truth the page comes from ClickHouse; none answers on this port.
    monkeypatch.setenv("OMNIJOURNEY_CLICKHOUSE__PORT", str(free_port()))
    assert main(["report", "--html", str(page)]) == 1
    assert "cannot reach ClickHouse" in capsys.readouterr().err
