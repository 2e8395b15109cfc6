"""JSON Schema files of the touchpoint and output contracts, for producers and consumers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import TypeAdapter

from schemas.contracts import (
    CONTRACT_VERSION,
    PERSONALIZATION_TOPIC,
    RECORD_MODELS,
    TOPIC_OF_RECORD,
)
from schemas.deadletter import DeadLetter
from schemas.identity import EDGE_IDENTIFIER_KINDS
from schemas.limits import SCHEMA_VERSION
from schemas.privacy import (
    PRIVACY_CONTRACT_VERSION,
    PRIVACY_RECEIPTS_TOPIC,
    PRIVACY_REQUESTS_TOPIC,
    ErasureInput,
    ErasureReceipt,
    ErasureRequest,
)
from schemas.touchpoint import CHANNEL_UNIONS, Touchpoint

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_EDGE_FIELDS: Final = ("received_at", "device_occurred_at")

Mode = Literal["validation", "serialization"]


def _schema(kind: Any, mode: Mode, title: str, description: str) -> dict[str, Any]:
    schema = TypeAdapter(kind).json_schema(mode=mode)
    _drop_nested_discriminators(schema)
    return {"$schema": DIALECT, "title": title, "description": description, **schema}


def _drop_nested_discriminators(node: Any) -> None:
    """Drop OpenAPI `discriminator` hints that point at unions (their mapping must name refs).

    JSON Schema validators ignore the keyword; the `oneOf` decides either way.
    """
    if isinstance(node, dict):
        mapping = node.get("discriminator", {}).get("mapping", {})
        if any(not isinstance(target, str) for target in mapping.values()):
            del node["discriminator"]
        for value in node.values():
            _drop_nested_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _drop_nested_discriminators(value)


def _as_input(schema: dict[str, Any]) -> dict[str, Any]:
    """What a producer sends: clear email/phone identifiers allowed, no edge-set fields."""
    for definition in schema.get("$defs", {}).values():
        properties = definition.get("properties", {})
        if "received_at" in properties and "identities" in properties:
            for field in _EDGE_FIELDS:
                properties.pop(field, None)
            definition["required"] = [
                name for name in definition.get("required", []) if name not in _EDGE_FIELDS
            ]
    identifier = schema.get("$defs", {}).get("Identifier", {})
    kind = identifier.get("properties", {}).get("kind", {})
    if "enum" in kind:
        kind["enum"] = [*kind["enum"], *EDGE_IDENTIFIER_KINDS]
    return schema


def input_schema(ref_template: str) -> dict[str, Any]:
    """The producer-input Touchpoint schema with references built from `ref_template`.

    For embedding in other documents, e.g. OpenAPI with "#/components/schemas/{model}".
    """
    schema = TypeAdapter(Touchpoint).json_schema(mode="validation", ref_template=ref_template)
    _drop_nested_discriminators(schema)
    return _as_input(schema)


def erasure_input_schema(ref_template: str) -> dict[str, Any]:
    """The operator-input ErasureInput schema (clear email/phone allowed), for embedding."""
    schema = TypeAdapter(ErasureInput).json_schema(mode="validation", ref_template=ref_template)
    return _as_input(schema)


_ALSO_ON: Final = {
    "journey_update": (
        f", and, while the customer allows personalization, on {PERSONALIZATION_TOPIC} "
        "(compacted; a tombstone forgets a customer who withdrew consent or merged)"
    ),
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every exported schema by file name."""
    version = f"v{SCHEMA_VERSION}"
    schemas: dict[str, dict[str, Any]] = {
        "touchpoint.input.schema.json": _as_input(
            _schema(
                Touchpoint,
                "validation",
                f"Touchpoint {version} (producer input)",
                "What a producer sends to the collector or to touchpoints.<channel>.",
            )
        ),
        "touchpoint.schema.json": _schema(
            Touchpoint,
            "serialization",
            f"Touchpoint {version}",
            "A validated touchpoint as omnijourney publishes it (no clear PII).",
        ),
        "deadletter.schema.json": _schema(
            DeadLetter,
            "serialization",
            "Dead letter v1",
            "A message refused by a stage, on touchpoints.deadletter.",
        ),
    }
    for record_type, model in RECORD_MODELS.items():
        schema = _schema(model, "serialization", "", "")
        schema["title"] = f"{record_type} v{CONTRACT_VERSION}"
        key = "event id" if record_type == "anonymous_touchpoint" else "customer id"
        also = _ALSO_ON.get(record_type, "")
        schema["description"] = (
            f"{(model.__doc__ or '').strip()} Published as JSON on "
            f"{TOPIC_OF_RECORD[record_type]}, keyed by {key}{also}; fields a consumer does not "
            "know must be ignored (a newer minor version may add some)."
        )
        schemas[f"{record_type.replace('_', '-')}.schema.json"] = schema
    schemas.update(_privacy_schemas())
    for channel, union in CHANNEL_UNIONS.items():
        schemas[f"touchpoint-{channel}.input.schema.json"] = _as_input(
            _schema(
                union,
                "validation",
                f"Touchpoint {version}, channel {channel} (producer input)",
                f"What a producer sends to the collector or to touchpoints.{channel}.",
            )
        )
        schemas[f"touchpoint-{channel}.schema.json"] = _schema(
            union,
            "serialization",
            f"Touchpoint {version}, channel {channel}",
            f"A validated {channel} touchpoint as omnijourney publishes it.",
        )
    return schemas


def _privacy_schemas() -> dict[str, dict[str, Any]]:
    version = f"v{PRIVACY_CONTRACT_VERSION}"
    return {
        "erasure-request.input.schema.json": _as_input(
            _schema(
                ErasureInput,
                "validation",
                f"Erasure request {version} (operator input)",
                "What an operator sends to POST /v1/privacy/erasure of the collector.",
            )
        ),
        "erasure-request.schema.json": _schema(
            ErasureRequest,
            "serialization",
            f"Erasure request {version}",
            f"An erasure request on {PRIVACY_REQUESTS_TOPIC}, keyed by request_id (email and "
            "phone only as keyed hashes).",
        ),
        "erasure-receipt.schema.json": _schema(
            ErasureReceipt,
            "serialization",
            f"Erasure receipt {version}",
            f"Proof of a completed erasure on {PRIVACY_RECEIPTS_TOPIC}, keyed by request_id "
            "(no personal data).",
        ),
    }


def write_json_schemas(directory: Path) -> list[Path]:
    """Write every schema into `directory` (created if needed); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(json_schemas().items()):
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
