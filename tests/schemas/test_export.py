"""Exported JSON Schemas validate the examples they describe (checked with `jsonschema`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from omnijourney.cli import main
from schemas.channel import CHANNELS
from schemas.contracts import RECORD_MODELS
from schemas.deadletter import encode_dead_letter, triage
from schemas.examples import examples
from schemas.touchpoint import encode_touchpoint
from tests.schemas.support import HASHER, RECEIVED, parse


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Draft202012Validator]:
    directory = tmp_path_factory.mktemp("schemas")
    assert main(["schemas", "export", str(directory)]) == 0
    validators = {}
    for path in directory.iterdir():
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        validators[path.name] = Draft202012Validator(schema)
    return validators


def test_one_file_per_model(exported: dict[str, Draft202012Validator]) -> None:
    expected = {"touchpoint.schema.json", "touchpoint.input.schema.json", "deadletter.schema.json"}
    expected |= {f"{kind.replace('_', '-')}.schema.json" for kind in RECORD_MODELS}
    expected |= {
        "erasure-request.input.schema.json",
        "erasure-request.schema.json",
        "erasure-receipt.schema.json",
    }
    for channel in CHANNELS:
        expected |= {f"touchpoint-{channel}.schema.json", f"touchpoint-{channel}.input.schema.json"}
    assert set(exported) == expected


@pytest.mark.parametrize("event", examples(), ids=lambda e: f"{e['channel']}-{e['type']}")
def test_input_schemas_accept_what_producers_send(
    exported: dict[str, Draft202012Validator], event: dict[str, Any]
) -> None:
    for name in (
        "touchpoint.input.schema.json",
        f"touchpoint-{event['channel']}.input.schema.json",
    ):
        errors = [e.message for e in exported[name].iter_errors(event)]
        assert errors == [], (name, errors)


@pytest.mark.parametrize("event", examples(), ids=lambda e: f"{e['channel']}-{e['type']}")
def test_validated_schemas_accept_what_omnijourney_publishes(
    exported: dict[str, Draft202012Validator], event: dict[str, Any]
) -> None:
    published = orjson.loads(encode_touchpoint(parse(event)))
    for name in ("touchpoint.schema.json", f"touchpoint-{event['channel']}.schema.json"):
        errors = [e.message for e in exported[name].iter_errors(published)]
        assert errors == [], (name, errors)


def test_validated_schema_refuses_clear_pii_and_input_schema_refuses_nonsense(
    exported: dict[str, Draft202012Validator],
) -> None:
    event = next(e for e in examples() if e["channel"] == "email")
    published = orjson.loads(encode_touchpoint(parse(event)))
    published["identities"] = [{"kind": "email", "value": "jane.roe@example.com"}]
    assert not exported["touchpoint.schema.json"].is_valid(published)
    for broken in (
        {**event, "channel": "fax"},
        {**event, "type": "page_view"},
        {**event, "occurred_at": "2024-05-01T10:00:00"},
        {**event, "schema_version": 2},
        {**event, "identities": [{"kind": "fax", "value": "1"}]},
        {k: v for k, v in event.items() if k != "event_id"},
    ):
        assert not exported["touchpoint.input.schema.json"].is_valid(broken), broken


def test_dead_letter_schema(exported: dict[str, Draft202012Validator]) -> None:
    letter = triage(b"not json", received_at=RECEIVED, hasher=HASHER)
    errors = list(
        exported["deadletter.schema.json"].iter_errors(orjson.loads(encode_dead_letter(letter)))
    )
    assert errors == []


def test_channel_schema_refuses_other_channels(exported: dict[str, Draft202012Validator]) -> None:
    web_event = next(e for e in examples() if e["channel"] == "web")
    assert not exported["touchpoint-pos.input.schema.json"].is_valid(web_event)


def test_export_writes_into_a_new_directory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert main(["schemas", "export", str(target)]) == 0
    assert (target / "touchpoint.schema.json").is_file()
