"""The HTTP collector: `POST /v1/touchpoints` in, Kafka transactions out.

* `keys` - write keys (bearer tokens) and the channels each may write; pure.
* `intake` - a request body and a key in, the records to produce or a refusal out; pure.
* `delivery` - one Kafka transaction per group of requests, answered only once committed.
* `openapi` - the OpenAPI document and the offline /docs page, from the pydantic models.
* `server` - the aiohttp application and `run`.
"""
