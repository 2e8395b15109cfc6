"""The one exception tree of omnijourney: every error we raise on purpose derives from here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict


class FieldError(TypedDict):
    """One field-level validation error: dotted location, message and machine reason."""

    loc: str
    msg: str
    reason: str


class OmnijourneyError(Exception):
    """Base of every error omnijourney raises on purpose."""


class ConfigurationError(OmnijourneyError):
    """Settings or environment make the requested action impossible (user must act)."""


class PrerequisiteMissing(ConfigurationError):
    """A required external program (JDK, Maven) is missing or too old."""


class PortInUse(ConfigurationError):
    """A port we must listen on is held by another program."""


class ServiceError(OmnijourneyError):
    """A local service (Kafka broker, embedded ClickHouse) failed to start or stop."""


class TransientError(OmnijourneyError):
    """An outage that is retried, never turned into data loss (broker or ClickHouse down)."""


class PoisonMessage(OmnijourneyError):
    """Input that can never be processed: it goes to the dead-letter topic and we continue."""


class NaiveDatetime(OmnijourneyError, ValueError):
    """A datetime without timezone reached code that only accepts timezone-aware UTC."""


class InvalidPii(OmnijourneyError, ValueError):
    """An email or phone number that cannot be normalized (the message never echoes it)."""


class InvalidTouchpoint(PoisonMessage):
    """A touchpoint that fails validation: one reason and the field errors that explain it."""

    def __init__(self, reason: str, errors: Sequence[FieldError]) -> None:
        self.reason = reason
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__(self._summary())

    def _summary(self) -> str:
        shown = "; ".join(f"{e['loc'] or '<event>'}: {e['msg']}" for e in self.errors[:5])
        more = len(self.errors) - 5
        suffix = f"; and {more} more" if more > 0 else ""
        return f"invalid touchpoint ({self.reason}): {shown}{suffix}"


class InvalidRecord(InvalidTouchpoint):
    """A record on a public journey or identity topic that breaks its contract.

    It shares InvalidTouchpoint's reason and field errors, so its dead letter names the field.
    """

    def _summary(self) -> str:
        return "invalid record" + super()._summary().removeprefix("invalid touchpoint")


class InvalidErasureRequest(InvalidRecord):
    """An erasure request that breaks its contract (field errors name what and why)."""

    def _summary(self) -> str:
        return "invalid erasure request" + super()._summary().removeprefix("invalid record")


class InvalidLookup(OmnijourneyError, ValueError):
    """A journey lookup names a bad identifier type or value (never echoes the value)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ErasureIncomplete(TransientError):
    """Rows of an erased customer were still found after the deletion (retry the erasure)."""


class MigrationError(OmnijourneyError):
    """The ClickHouse schema cannot be brought to the version this code expects."""


class ReportError(OmnijourneyError):
    """A saved query or ad-hoc SQL could not be run (unknown name, bad parameter, SQL error)."""


class ClickHouseQueryError(OmnijourneyError):
    """ClickHouse refused a request: carries the server's error code, name and message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"Code: {code}. {message} ({name})")
        self.code = code
        self.name = name
        self.message = message


class KafkaUnavailable(TransientError):
    """Kafka did not acknowledge in time (broker down or unreachable); the caller retries."""


class Overloaded(TransientError):
    """Too much work is already waiting; the caller retries later."""


class InvalidTouch(PoisonMessage):
    """A touchpoint handed to the stitching core breaks one of its rules (field and reason)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ProtocolViolation(OmnijourneyError):
    """A stitching message that cannot happen in the receiving state (a bug or a corrupt table)."""
