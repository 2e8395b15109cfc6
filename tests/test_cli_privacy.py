"""`omnijourney privacy erase`: the request on privacy.requests, hashed as the edge hashes."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from omnijourney.cli import main
from omnijourney.settings import Settings
from schemas.pii import PiiHasher
from schemas.privacy import decode_request
from schemas.topics import PRIVACY_REQUESTS_TOPIC
from tests.pipeline_support import PII_KEY, end_offsets, free_port, read_from

# Unique per run, and never the example events' identifiers: a worker that shares the broker
# processes these requests and suppresses what they name (the example events would vanish).
RUN = uuid.uuid4().hex[:10]
EMAIL = f"Erase.Me.{RUN}@example.com"
CARD = f"LOY-ERASE-{RUN}"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIJOURNEY_PRIVACY__PII_HASH_KEY", PII_KEY)


@pytest.mark.kafka
def test_erase_puts_one_hashed_request_on_the_topic_and_prints_its_id(
    env: None,
    kafka_settings: Settings,
    kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIJOURNEY_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    argv = ["privacy", "erase", "--identifier", f"email:{EMAIL}"]
    argv += ["--identifier", f"loyalty_id:{CARD}", "--suppress", "--by", "cli:dpo"]
    assert main(argv) == 0  # creates the topic on a fresh broker
    start = asyncio.run(end_offsets(kafka_bootstrap, [PRIVACY_REQUESTS_TOPIC]))
    capsys.readouterr()
    assert main(argv) == 0
    out, err = capsys.readouterr()
    request_id = out.strip()
    assert request_id.startswith("er-") and request_id in err
    (record,) = asyncio.run(read_from(kafka_bootstrap, start))
    assert record.key == request_id.encode()
    request = decode_request(record.value)
    hasher = PiiHasher(PII_KEY.encode(), kafka_settings.privacy.default_phone_region)
    assert [(i.kind, i.value) for i in request.identifiers] == [
        ("email_hash", hasher.email_hash(EMAIL)),
        ("loyalty_id", CARD),
    ]
    assert request.suppress_future and request.requested_by == "cli:dpo"
    assert b"@" not in record.value


def test_bad_identifiers_are_refused_naming_them_before_kafka_is_asked(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNIJOURNEY_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    code = main(["privacy", "erase", "--identifier", "email:no-at-sign", "--identifier", "fax:1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "identifiers.0.value" in err and "identifiers.1.kind" in err
    assert "no-at-sign" not in err


def test_an_unreachable_kafka_is_an_error_that_says_how_to_retry(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNIJOURNEY_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    code = main(["privacy", "erase", "--identifier", "loyalty_id:L-7", "--request-id", "er-x1"])
    assert code == 1
    assert "--request-id er-x1" in capsys.readouterr().err
