"""How every Kafka client of omnijourney connects: bootstrap list, TLS and SASL from settings."""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from omnijourney.exceptions import ConfigurationError
from omnijourney.settings import KafkaSettings


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (producer, consumer, admin) of this cluster."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in {"SSL", "SASL_SSL"}:
        options["ssl_context"] = _ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return options


def _ssl_context(kafka: KafkaSettings) -> Any:
    # Without a CA file the system trust store decides (public CAs); a Strimzi cluster CA is
    # private and must be given as ssl_cafile.
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(kafka, name)
        if path is not None and not path.is_file():
            raise ConfigurationError(f"kafka.{name}: {path} is not a readable file")
    return create_ssl_context(
        cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
        certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
        keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
    )
