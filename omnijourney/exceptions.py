"""The one exception tree of omnijourney: every error we raise on purpose derives from here."""


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


class InvalidTouch(PoisonMessage):
    """A touchpoint handed to the stitching core breaks one of its rules (field and reason)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ProtocolViolation(OmnijourneyError):
    """A stitching message that cannot happen in the receiving state (a bug or a corrupt table)."""
