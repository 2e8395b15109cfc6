"""The collector's OpenAPI 3.1 document, built from the pydantic models, and a /docs page.

The page is rendered on the server from the document: it needs no script and no network.
"""

from __future__ import annotations

import html
import json
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from omnijourney import __version__ as VERSION
from omnijourney.collector.intake import (
    MAX_ERASURE_BODY_BYTES,
    AcceptedBody,
    ErasureAcceptedBody,
    ErrorBody,
)
from schemas.examples import examples
from schemas.export import erasure_input_schema, input_schema

REF: Final = "#/components/schemas/{model}"
TOUCHPOINTS_PATH: Final = "/v1/touchpoints"
ERASURE_PATH: Final = "/v1/privacy/erasure"

_DESCRIPTION: Final = """\
Send touchpoints (web, app, POS, call center, email/SMS, CRM events) to omnijourney.

* Authenticate with a write key: `Authorization: Bearer <key>`. Each key may write only its
  channels (a till's key: `pos`).
* Send one event, an array of events, or `{"batch": [...], "sent_at": ...}`.
* Clear `email` / `phone` identifiers are accepted here and hashed before anything is stored.
* Set `sent_at` (your clock when sending) so the collector can correct your clock's skew.
* All or nothing: a 202 means every event is committed to Kafka; any other answer means none
  is. On 503 (Kafka unreachable, or the collector overloaded) retry the same request after
  `Retry-After` seconds; keep `event_id` stable across retries.
"""


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying the same request.",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


def _request_schema(max_events: int) -> dict[str, Any]:
    event = {"$ref": REF.format(model="TouchpointInput")}
    events = {"type": "array", "items": event, "minItems": 1, "maxItems": max_events}
    return {
        "oneOf": [
            event,
            events,
            {
                "type": "object",
                "properties": {
                    "batch": events,
                    "sent_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "Sender clock at send time, for events without one.",
                    },
                },
                "required": ["batch"],
                "additionalProperties": False,
            },
        ]
    }


def _erasure_operation() -> dict[str, Any]:
    example = {
        "identifiers": [
            {"kind": "email", "value": "jane.roe@example.com"},
            {"kind": "loyalty_id", "value": "LOY-000417"},
        ],
        "suppress_future": True,
    }
    return {
        "operationId": "requestErasure",
        "summary": "Ask to erase a person everywhere (GDPR art. 17)",
        "description": (
            "Authenticate with the admin key (not a write key). Name the person by identifiers; "
            "clear `email` / `phone` are hashed here exactly as in touchpoints and never stored "
            "in clear. The request is committed to Kafka (privacy.requests, keyed by "
            "request_id) before the 202; the pipeline then erases the customer and every alias "
            "from every store and publishes a receipt on privacy.receipts. Send `request_id` "
            "to retry a request without creating a second one. At most "
            f"{MAX_ERASURE_BODY_BYTES} bytes."
        ),
        "security": [{"adminKey": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": REF.format(model="ErasureInput")},
                    "examples": {"erasure": {"summary": "by email and card", "value": example}},
                }
            },
        },
        "responses": {
            "202": {
                "description": "The request is committed to Kafka under request_id.",
                "content": {
                    "application/json": {
                        "schema": {"$ref": REF.format(model="ErasureAcceptedBody")}
                    }
                },
            },
            "400": _error("The body is not JSON."),
            "401": _error("No key was sent."),
            "403": _error("The key is not the admin key, or no admin key is configured."),
            "413": _error("Body larger than the limit."),
            "422": _error("Invalid request: errors name each field and reason."),
            "503": _error(
                "Kafka unreachable or the collector overloaded: retry.", retry_after=True
            ),
        },
    }


def openapi_document(*, max_events: int, max_body_bytes: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the collector."""
    touchpoint = input_schema(REF)
    schemas: dict[str, Any] = dict(touchpoint.pop("$defs"))
    schemas["TouchpointInput"] = {
        "title": "TouchpointInput",
        "description": "One touchpoint as a producer sends it (by channel, then type).",
        **touchpoint,
    }
    _, responses = models_json_schema(
        [
            (AcceptedBody, "serialization"),
            (ErrorBody, "serialization"),
            (ErasureAcceptedBody, "serialization"),
        ],
        ref_template=REF,
    )
    schemas.update(responses["$defs"])
    erasure = erasure_input_schema(REF)
    schemas.update(erasure.pop("$defs"))  # its Identifier is the touchpoints' input Identifier
    schemas["ErasureInput"] = erasure
    sample = examples()[:2]
    operation = {
        "operationId": "sendTouchpoints",
        "summary": "Send one touchpoint or a batch",
        "description": (
            f"At most {max_events} events and {max_body_bytes} bytes per request. The answer "
            "comes once Kafka has committed the events (acks=all, one transaction)."
        ),
        "security": [{"writeKey": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _request_schema(max_events),
                    "examples": {
                        "batch": {"summary": "a batch", "value": {"batch": sample}},
                        "single": {"summary": "one event", "value": sample[0]},
                    },
                }
            },
        },
        "responses": {
            "202": {
                "description": "Every event is committed to Kafka.",
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(model="AcceptedBody")}}
                },
            },
            "400": _error("The body is not JSON, not an event or batch, or empty."),
            "401": _error("Missing or unknown write key."),
            "403": _error("An event names a channel this key may not write (index given)."),
            "413": _error("Body or batch larger than the limits."),
            "422": _error("Invalid events: errors name each event's index, field and reason."),
            "503": _error(
                "Kafka unreachable or the collector overloaded: retry.", retry_after=True
            ),
        },
    }
    health = {
        "operationId": "health",
        "summary": "Whether the collector can reach Kafka",
        "responses": {
            "200": {"description": "The Kafka producer is connected."},
            "503": {"description": "Kafka is unreachable; requests get 503."},
        },
    }
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "omnijourney collector", "version": VERSION, "description": _DESCRIPTION},
        "paths": {
            TOUCHPOINTS_PATH: {"post": operation},
            ERASURE_PATH: {"post": _erasure_operation()},
            "/health": {"get": health},
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "bearer", "description": "A write key."},
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin key (setting collector.admin_key).",
                },
            },
        },
    }


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n\n") if line.strip())


def docs_page(document: dict[str, Any]) -> str:
    """A self-contained HTML page describing the API (no scripts, no external resources)."""
    info = document["info"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(info['title'])}</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.8rem;"
        "overflow:auto;max-height:30rem}table{border-collapse:collapse}td,th{border:1px solid "
        "#ccc;padding:.2rem .6rem;text-align:left}h2{border-top:1px solid #ddd;padding-top:1rem}"
        "</style></head><body>",
        f"<h1>{html.escape(info['title'])} <small>{html.escape(info['version'])}</small></h1>",
        f"<pre>{html.escape(info['description'])}</pre>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>",
    ]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            parts.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>")
            parts.append(f"<p><b>{html.escape(op['summary'])}</b></p>")
            if "description" in op:
                parts.append(_paragraphs(op["description"]))
            parts.append("<table><tr><th>status</th><th>meaning</th></tr>")
            for status, response in op["responses"].items():
                parts.append(
                    f"<tr><td>{status}</td><td>{html.escape(response['description'])}</td></tr>"
                )
            parts.append("</table>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                example = next(iter(body["examples"].values()))["value"]
                parts.append("<p>Example body:</p>")
                parts.append(f"<pre>{html.escape(json.dumps(example, indent=2))}</pre>")
    names = sorted(document["components"]["schemas"])
    parts.append("<h2>Schemas</h2><p>" + ", ".join(f"<code>{n}</code>" for n in names) + "</p>")
    parts.append("</body></html>")
    return "".join(parts)
