"""One frozen, typed settings object for every omnijourney process (env prefix OMNIJOURNEY_)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnijourney.exceptions import ConfigurationError


class KafkaSettings(BaseModel):
    """Where Kafka is and how the local broker is run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(
        default="", description="Comma-separated bootstrap list; empty means the local broker."
    )
    host: str = Field(default="127.0.0.1", description="Listen address of the local broker.")
    port: int = Field(default=9092, ge=1, le=65535, description="Port of the local broker.")
    controller_port: int = Field(default=9093, ge=1, le=65535)
    version: str = Field(
        default="3.9.2",
        pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$",
        description="Apache Kafka release of the local broker (resolved from Maven Central).",
    )
    scala_version: str = Field(
        default="2.13", pattern=r"^[0-9]+\.[0-9]+$", description="Scala build of the broker jar."
    )
    heap: str = Field(
        default="512m", pattern=r"^[0-9]+[kmgKMG]?$", description="JVM heap of the local broker."
    )
    default_partitions: int = Field(
        default=3, ge=1, description="num.partitions of the local broker (auto-created topics)."
    )
    java: str = Field(default="java", description="Java (17+) executable that runs the broker.")
    maven: str = Field(default="mvn", description="Maven executable that resolves the jars.")
    start_timeout_s: float = Field(
        default=90.0, gt=0, description="How long start waits for the broker to answer."
    )
    stop_timeout_s: float = Field(
        default=30.0, gt=0, description="How long stop waits for a graceful shutdown before KILL."
    )

    @model_validator(mode="after")
    def _distinct_ports(self) -> KafkaSettings:
        if self.port == self.controller_port:
            raise ValueError(f"port and controller_port must differ (both are {self.port})")
        return self

    @property
    def bootstrap(self) -> str:
        """The bootstrap list clients use."""
        return self.bootstrap_servers or f"{self.host}:{self.port}"


class ClickHouseSettings(BaseModel):
    """Where ClickHouse is; the embedded server listens on host:port."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        default="127.0.0.1", description="Host of ClickHouse (listen address when embedded)."
    )
    port: int = Field(default=8123, ge=1, le=65535)
    database: str = "default"
    username: str = "default"
    password: SecretStr = SecretStr("")
    secure: bool = False
    embedded: bool = Field(default=True, description="Run the embedded chdb server locally.")
    max_body_bytes: int = Field(default=1 << 30, gt=0, description="Largest request body accepted.")
    start_timeout_s: float = Field(default=60.0, gt=0)
    stop_timeout_s: float = Field(default=30.0, gt=0, description="Grace before SIGKILL on stop.")
    store_dir: Path | None = Field(
        default=None,
        description="chdb store of the embedded server (default <data_dir>/clickhouse/store); "
        "its parent directory also holds server.pid and server.log.",
    )
    workers: int = Field(
        default=8, ge=1, le=256, description="Threads running engine work: concurrent queries."
    )
    session_timeout_s: float = Field(
        default=60.0, ge=0, description="Idle time after which an HTTP session is closed."
    )
    max_session_timeout_s: float = Field(
        default=3600.0, ge=0, description="Largest session_timeout a client may ask for."
    )

    @property
    def client_host(self) -> str:
        """The host clients connect to (a wildcard listen address means this machine)."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)

    @property
    def url(self) -> str:
        """The HTTP(S) address of ClickHouse."""
        host = self.client_host
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.secure else 'http'}://{host}:{self.port}"


class PrivacySettings(BaseModel):
    """How PII is normalized and keyed-hashed at the edge (collector, ingest, emitter)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pii_hash_key: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "HMAC-SHA256 key for email/phone hashes (at least 32 characters). Empty: a random "
            "key is generated once under the data dir (local use only; refused when "
            "kafka.bootstrap_servers points at an external cluster)."
        ),
    )
    default_phone_region: str = Field(
        default="US",
        description="ISO 3166 region used to read phone numbers written without a + prefix.",
    )

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        import phonenumbers

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r} (expected e.g. 'US', 'GB', 'DE')")
        return region


class RetentionSettings(BaseModel):
    """How long ClickHouse keeps each kind of row (days; 0 keeps rows forever)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    touchpoints_days: int = Field(
        default=730, ge=0, le=36500, description="Enriched touchpoints, by occurred_at."
    )
    sessions_days: int = Field(default=730, ge=0, le=36500, description="Sessions, by started_at.")
    journeys_days: int = Field(default=730, ge=0, le=36500, description="Journeys, by started_at.")
    identity_days: int = Field(
        default=0,
        ge=0,
        le=36500,
        description="Identity links, merges and rejections (0: forever; aliases are never "
        "expired, rows written under an old customer id must keep resolving).",
    )
    dead_letters_days: int = Field(
        default=90, ge=0, le=36500, description="Dead letters, by received_at."
    )


class SinkSettings(BaseModel):
    """The ClickHouse sink: consumer group, batching, back-off, health endpoint, retention."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group_id: str = Field(
        default="omnijourney-sink", min_length=1, description="Kafka consumer group of the sink."
    )
    topics: tuple[str, ...] = Field(
        default=(
            "journeys.touchpoints",
            "journeys.sessions",
            "journeys.updates",
            "identity.links",
            "identity.merges",
            "touchpoints.deadletter",
        ),
        min_length=1,
        description="Topics the sink copies into ClickHouse.",
    )
    batch_rows: int = Field(
        default=20_000, ge=1, description="A partition's batch is inserted once it has this many."
    )
    flush_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=300,
        description="...or once its first record waited this long (bounds freshness).",
    )
    max_buffered_rows: int = Field(
        default=200_000,
        ge=1,
        description="Consumption pauses while this many rows wait for ClickHouse.",
    )
    max_buffered_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Consumption pauses while this many record bytes wait for ClickHouse.",
    )
    retry_initial_s: float = Field(default=0.5, gt=0, description="First back-off after a failure.")
    retry_max_s: float = Field(default=30.0, gt=0, description="Longest back-off between retries.")
    health_host: str = Field(default="127.0.0.1", description="Listen address of /health.")
    health_port: int = Field(
        default=6067, ge=0, le=65535, description="Port of /health (0: no health endpoint)."
    )
    retention: RetentionSettings = Field(default_factory=RetentionSettings)


class Settings(BaseSettings):
    """Everything configurable, read once from OMNIJOURNEY_* variables and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="OMNIJOURNEY_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    data_dir: Path = Field(default=Path(".omnijourney"), description="Root of all local state.")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)

    def path(self, *parts: str) -> Path:
        """An absolute path below the data dir."""
        return self.data_dir.resolve().joinpath(*parts)


ENV_PREFIX = "OMNIJOURNEY_"


def _plain(value: object) -> object:
    """A JSON-ready copy of a dumped settings value, with secrets revealed."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {key: _plain(getattr(value, key)) for key in type(value).model_fields}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of a child process that must load exactly these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            env[f"{ENV_PREFIX}{name.upper()}"] = json.dumps(_plain(value))
        elif isinstance(value, Path):
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value.resolve())
        else:
            env[f"{ENV_PREFIX}{name.upper()}"] = str(_plain(value))
    return env


def load_settings(**overrides: object) -> Settings:
    """Build the settings once (environment first, then explicit overrides)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigurationError(f"invalid settings (OMNIJOURNEY_* variables): {problems}") from exc
