"""The OpenAPI document validates what the collector accepts, and /docs is self-contained."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from omnijourney.collector.openapi import TOUCHPOINTS_PATH, docs_page, openapi_document
from schemas.examples import examples


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(max_events=500, max_body_bytes=1 << 20)


def _request_validator(document: dict[str, Any]) -> jsonschema.Draft202012Validator:
    body = document["paths"][TOUCHPOINTS_PATH]["post"]["requestBody"]
    schema = {**body["content"]["application/json"]["schema"], "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_every_example_and_batch_form_validates(document: dict[str, Any]) -> None:
    validator = _request_validator(document)
    events = examples()
    for event in events:
        validator.validate(event)
    validator.validate(events)
    validator.validate({"batch": events, "sent_at": "2024-05-01T10:00:05Z"})


def test_schema_refuses_what_the_collector_refuses(document: dict[str, Any]) -> None:
    validator = _request_validator(document)
    event = examples()[0]
    assert not validator.is_valid({**event, "channel": "fax"})
    assert not validator.is_valid({**event, "unknown": 1})
    assert not validator.is_valid([])
    assert not validator.is_valid({"batch": [event], "extra": 1})


def test_document_shape(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    responses = document["paths"][TOUCHPOINTS_PATH]["post"]["responses"]
    assert set(responses) == {"202", "400", "401", "403", "413", "422", "503"}
    assert "Retry-After" in responses["503"]["headers"]
    refs = str(document)
    assert "#/$defs/" not in refs  # every reference points into components


def test_docs_page_is_offline(document: dict[str, Any]) -> None:
    page = docs_page(document)
    assert "POST /v1/touchpoints" in page and "/openapi.json" in page
    assert "<script" not in page and "http://" not in page.replace("http://json", "")
