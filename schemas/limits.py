"""Bounds of the touchpoint contract: versions, sizes and plausible event times."""

from __future__ import annotations

from datetime import UTC, datetime

SCHEMA_VERSION = 1
"""Current major version of the touchpoint contract; a newer major is refused."""

MAX_EVENT_BYTES = 64 * 1024
"""Largest serialized touchpoint (a long till receipt fits; Kafka's 1 MiB default is far off)."""

MAX_BATCH_EVENTS = 500
"""Most touchpoints in one collector batch."""

MAX_BATCH_BYTES = 1024 * 1024
"""Largest collector request body."""

MAX_IDENTITIES = 16
MAX_LINES = 500
MAX_CUSTOM_PROPERTIES = 50
MAX_ID_CHARS = 256
MAX_CODE_CHARS = 128
MAX_NAME_CHARS = 256
MAX_TEXT_CHARS = 2048
MAX_URL_CHARS = 4096

MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
"""Earliest plausible timestamp: catches epoch-zero clocks of unset devices."""

MAX_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)
"""Latest accepted timestamp; keeps skew arithmetic far from datetime overflow."""

MAX_DEADLETTER_ORIGINAL_BYTES = 256 * 1024
"""Original bytes kept in a dead letter (base64 of it stays well under Kafka's 1 MiB)."""
