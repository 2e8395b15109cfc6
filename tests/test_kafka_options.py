"""Kafka client options from settings: plaintext locally, TLS and SASL for a real cluster."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from omnijourney.exceptions import ConfigurationError
from omnijourney.kafka_options import client_options
from omnijourney.settings import KafkaSettings


def test_the_local_default_is_plaintext_to_the_local_bootstrap() -> None:
    assert client_options(KafkaSettings()) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_carries_the_credentials_and_a_tls_context() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="k1:9093,k2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="omnijourney",
        sasl_password=SecretStr("s3cret"),
    )
    options = client_options(kafka)
    assert options["bootstrap_servers"] == "k1:9093,k2:9093"
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "omnijourney",
        "s3cret",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_the_password_is_secret_in_the_settings_repr() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password=SecretStr("s3cret")
    )
    assert "s3cret" not in repr(kafka)
    assert "ssl_context" not in client_options(kafka)


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs sasl_username and sasl_password"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_username="omnijourney")


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="ssl_certfile and ssl_keyfile go together"):
        KafkaSettings(security_protocol="SSL", ssl_certfile=Path("/etc/client.crt"))


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=tmp_path / "ca.crt")
    with pytest.raises(ConfigurationError, match=r"kafka.ssl_cafile: .*ca.crt is not a readable"):
        client_options(kafka)


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValidationError, match="security_protocol"):
        KafkaSettings(security_protocol="TLS")  # type: ignore[arg-type]
