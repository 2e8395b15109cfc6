"""The journey lookup on the worker: "what is this customer's current journey", by any identifier.

    GET  /v1/journeys/{kind}/{value}       kind: anonymous_id, device_id, customer_id,
                                           loyalty_id, email_hash, phone_hash
    POST /v1/journeys/lookup               {"kind": ..., "value": ...}; also kind email or
                                           phone in clear, hashed here as at the edge

Answers 200 with the customer's id, latest consent and current journey (the latest one still
in state, null if it has none), 404 for an identifier nobody owns, 403 when the customer's
latest consent does not allow personalization, 400 naming the field of a bad kind or value.
Clear email and phone are refused in a URL (URLs end up in logs) and never logged.

The state is partitioned: an identifier's owner lives with the identifier's key, the
customer's state with the customer id, and the two are usually on different workers. Each hop
is an internal view routed with Faust's `table_route` to the worker that owns the key in its
table (it forwards the request over HTTP when that is another worker); the public view walks
identifier -> customer -> (survivor of a merge, ...) through them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import faust
import orjson
from faust.web import Request, Response, View
from yarl import URL

from omnijourney.exceptions import InvalidLookup, InvalidPii, InvalidTouch, OmnijourneyError
from schemas.pii import PiiHasher
from streams.core import Identifier, Stitcher
from streams.core.model import IDENTIFIER_KINDS
from streams.core.stitcher import ALIAS, LIVE, CustomerState

log = logging.getLogger(__name__)

CLEAR_KINDS: Final = ("email", "phone")
"""Kinds accepted in clear in a POST body and hashed here (email_hash, phone_hash)."""
IDENTIFIER_PATH: Final = "/v1/internal/identifier"
CUSTOMER_PATH: Final = "/v1/internal/customer"
MAX_HOPS: Final = 16
"""Aliases followed at most (merge chains are short: each hop goes to an older customer)."""

Answer = tuple[int, dict[str, Any]]


def _refused(field: str, message: str, status: int = 400) -> Answer:
    reason = "invalid_value" if status == 400 else "not_found"
    return status, {"error": reason, "errors": [{"loc": field, "msg": message, "reason": reason}]}


def identifier_of(kind: object, value: object, hasher: PiiHasher, *, clear: bool) -> Identifier:
    """The identifier a lookup names; InvalidLookup names the field (never the value)."""
    if not isinstance(kind, str) or not kind:
        raise InvalidLookup("kind", "a string identifier type is required")
    if not isinstance(value, str) or not value:
        raise InvalidLookup("value", "a non-empty string is required")
    if kind in CLEAR_KINDS:
        if not clear:
            raise InvalidLookup("kind", f"a clear {kind} goes in a POST body, never in a URL")
        try:
            hashed = hasher.email_hash(value) if kind == "email" else hasher.phone_hash(value)
        except InvalidPii as exc:
            raise InvalidLookup("value", str(exc)) from None
        return Identifier(f"{kind}_hash", hashed)
    if kind not in IDENTIFIER_KINDS:
        known = ", ".join((*IDENTIFIER_KINDS, *CLEAR_KINDS) if clear else IDENTIFIER_KINDS)
        raise InvalidLookup("kind", f"unknown identifier type (known: {known})")
    try:
        return Identifier(kind, value)
    except InvalidTouch as exc:
        raise InvalidLookup("value", exc.args[-1] if exc.args else "invalid") from None


def owner_answer(stored: bytes | None) -> Answer:
    """The internal identifier view's answer from the identifiers table's value."""
    if stored is None:
        return _refused("identifier", "unknown identifier", 404)
    owner = orjson.loads(stored)["state"]["owner"]
    return 200, {"customer_id": str(owner)}


def customer_answer(state: CustomerState | None) -> Answer:
    """The internal customer view's answer: the journey, a refusal, or the survivor to ask."""
    if state is None or (state.status != ALIAS and state.timeline is None):
        return _refused("identifier", "unknown identifier", 404)
    if state.status == ALIAS:
        return 200, {"merged_into": state.merged_into}
    timeline = state.live_timeline
    if not timeline.consent.personalization:
        return 403, {
            "error": "no_consent",
            "errors": [
                {
                    "loc": "consent.personalization",
                    "msg": "the customer does not allow personalization",
                    "reason": "no_consent",
                }
            ],
        }
    journeys = timeline.open_journeys()
    return 200, {
        "customer_id": state.customer_id,
        "status": "live" if state.status == LIVE else state.status,
        "consent": timeline.consent.to_dict(),
        "journey": journeys[-1].to_dict() if journeys else None,
        "open_journeys": len(journeys),
    }


class Lookup:
    """The lookup views on a worker's web server (see the module doc)."""

    def __init__(self, app: faust.App, tables: Mapping[str, Any], hasher: PiiHasher) -> None:
        self.app = app
        self.identifiers = tables["identifiers"]
        self.customers = tables["customers"]
        self.stitcher: Stitcher = tables["stitcher"]
        self.hasher = hasher

    def register(self) -> None:
        """Add the public and the internal views to the app."""
        app, lookup = self.app, self

        @app.page(IDENTIFIER_PATH)
        @app.table_route(table=self.identifiers, query_param="key")
        async def identifier_view(web: View, request: Request) -> Response:
            status, body = owner_answer(lookup.identifiers.get(request.query["key"].encode()))
            return web.json(body, status=status)

        @app.page(CUSTOMER_PATH)
        @app.table_route(table=self.customers, query_param="id")
        async def customer_view(web: View, request: Request) -> Response:
            status, body = customer_answer(lookup.customer(request.query["id"]))
            return web.json(body, status=status)

        @app.page("/v1/journeys/{kind}/{value}")
        async def journey_view(web: View, request: Request, kind: str, value: str) -> Response:
            status, body = await lookup.answer(kind, value, clear=False)
            return web.json(body, status=status)

        class JourneyLookup(View):
            async def post(self, request: Request) -> Response:
                try:
                    data = orjson.loads(await request.read())
                except orjson.JSONDecodeError:
                    return self.json(_refused("body", "not JSON")[1], status=400)
                if not isinstance(data, dict):
                    return self.json(_refused("body", "a JSON object is required")[1], status=400)
                status, body = await lookup.answer(data.get("kind"), data.get("value"), clear=True)
                return self.json(body, status=status)

        app.page("/v1/journeys/lookup")(JourneyLookup)

    def customer(self, customer_id: str) -> CustomerState | None:
        """The stored state of a customer key on this worker."""
        stored = self.customers.get(customer_id.encode())
        if stored is None:
            return None
        return self.stitcher.customer_from_dict(orjson.loads(stored)["state"])

    async def answer(self, kind: object, value: object, *, clear: bool) -> Answer:
        """Walk identifier -> customer -> survivor through the internal views."""
        try:
            identifier = identifier_of(kind, value, self.hasher, clear=clear)
        except InvalidLookup as exc:
            return _refused(exc.field, exc.message)
        try:
            status, body = await self._get(IDENTIFIER_PATH, key=identifier.key)
            for _ in range(MAX_HOPS):
                if status != 200:
                    return status, body
                customer_id = body.get("merged_into") or body["customer_id"]
                if "merged_into" not in body and "journey" in body:
                    return status, body
                status, body = await self._get(CUSTOMER_PATH, id=customer_id)
        except (OSError, OmnijourneyError, KeyError, ValueError) as exc:
            log.warning("journey lookup failed: %s", type(exc).__name__)  # no identifier logged
            return 503, {"error": "unavailable", "errors": []}
        log.error("journey lookup: more than %d aliases in a row", MAX_HOPS)
        return 503, {"error": "unavailable", "errors": []}

    async def _get(self, path: str, **query: str) -> Answer:
        """GET an internal view through this worker (table_route takes it to the owner)."""
        url = URL(str(self.app.conf.canonical_url)).with_path(path).with_query(query)
        async with self.app.http_client.get(url) as response:
            body = orjson.loads(await response.read())
            return response.status, body


def register_lookup(app: faust.App, tables: Mapping[str, Any], hasher: PiiHasher) -> Lookup:
    """Add the journey lookup views; `tables`: identifiers, customers (Faust tables), stitcher."""
    lookup = Lookup(app, tables, hasher)
    lookup.register()
    return lookup
