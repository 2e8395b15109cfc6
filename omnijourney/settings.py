"""One frozen, typed settings object for every omnijourney process (env prefix OMNIJOURNEY_)."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Literal

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
from schemas.channel import Channel
from schemas.limits import MAX_BATCH_BYTES, MAX_BATCH_EVENTS


class KafkaSettings(BaseModel):
    """Where Kafka is and how the local broker is run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(
        default="", description="Comma-separated bootstrap list; empty means the local broker."
    )
    host: str = Field(default="127.0.0.1", description="Listen address of the local broker.")
    port: int = Field(default=9092, ge=1, le=65535, description="Port of the local broker.")
    controller_port: int = Field(default=9093, ge=1, le=65535)
    brokers: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Nodes of the local KRaft cluster; node k (0-based) of several listens on "
        "port+2k and controller_port+2k.",
    )
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Replication factor of the topics omnijourney creates; unset means "
        "min(3, brokers the cluster names).",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of the topics omnijourney creates; unset means "
        "replication factor - 1 (at least 1).",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How clients talk to the cluster (the local one: PLAINTEXT).",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism with SASL_PLAINTEXT / SASL_SSL."
    )
    sasl_username: str = Field(default="", description="SASL user with SASL_* protocols.")
    sasl_password: SecretStr = Field(default=SecretStr(""), description="SASL password (secret).")
    ssl_cafile: Path | None = Field(
        default=None, description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL)."
    )
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    ssl_keyfile: Path | None = Field(default=None, description="Key of the client certificate.")
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
        ports = [port for _, broker, controller in self.nodes() for port in (broker, controller)]
        if max(ports) > 65535:
            raise ValueError(f"brokers={self.brokers} needs ports up to {max(ports)} (> 65535)")
        if len(set(ports)) != len(ports):
            raise ValueError(
                f"brokers={self.brokers} with port={self.port} and "
                f"controller_port={self.controller_port} gives two nodes the same port "
                "(node k uses port+2k and controller_port+2k)"
            )
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_username and self.sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and sasl_password"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS needs both)")
        if (
            self.replication_factor is not None
            and self.min_insync_replicas is not None
            and self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) must not exceed "
                f"replication_factor ({self.replication_factor})"
            )
        return self

    def nodes(self) -> list[tuple[int, int, int]]:
        """(node id, broker port, controller port) of each local node, node ids from 1."""
        # Two ports per node, interleaved, so the defaults (9092/9093) extend without overlap.
        return [
            (k + 1, self.port + 2 * k, self.controller_port + 2 * k) for k in range(self.brokers)
        ]

    @property
    def bootstrap(self) -> str:
        """The bootstrap list clients use (every local node in cluster mode)."""
        if self.bootstrap_servers:
            return self.bootstrap_servers
        return ",".join(f"{self.host}:{port}" for _, port, _ in self.nodes())


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
    cluster: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$",
        description="Name of the ClickHouse cluster (remote_servers) the schema lives on; empty: "
        "one server. Set: migrate creates replicated local tables and Distributed tables ON "
        "CLUSTER, and the sink inserts with distributed_foreground_insert=1.",
    )
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


class WriteKey(BaseModel):
    """One collector write key: the secret a sender presents and the channels it may write."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    secret: SecretStr = Field(description="The bearer token (at least 16 characters).")
    channels: tuple[Channel, ...] = Field(
        min_length=1, description="Channels this key may write, e.g. ['pos'] for a till."
    )

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("a write key secret needs at least 16 characters")
        return value

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: tuple[Channel, ...]) -> tuple[Channel, ...]:
        return tuple(dict.fromkeys(value))


def is_loopback(host: str) -> bool:
    """Whether a listen address is a loopback one (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CollectorSettings(BaseModel):
    """The HTTP collector: where it listens, who may write what, and its request limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Listen address (loopback by default).")
    port: int = Field(default=8080, ge=0, le=65535, description="Listen port (0: any free one).")
    write_keys: dict[str, WriteKey] = Field(
        default_factory=dict,
        description="Key name -> {secret, channels}; as JSON in OMNIJOURNEY_COLLECTOR__WRITE_KEYS.",
    )
    admin_key: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token of the admin endpoints (POST /v1/privacy/erasure), at least "
        "32 characters, distinct from every write key; empty: those endpoints answer 403.",
    )
    dev_write_key: bool = Field(
        default=False,
        description="With no write keys: generate one key for every channel and print it once "
        "(loopback only; for local development).",
    )
    max_batch_events: int = Field(
        default=MAX_BATCH_EVENTS, ge=1, le=MAX_BATCH_EVENTS, description="Events per request."
    )
    max_body_bytes: int = Field(
        default=MAX_BATCH_BYTES, ge=1024, le=MAX_BATCH_BYTES, description="Request body size."
    )
    kafka_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long a request waits for Kafka before it is answered 503.",
    )
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 503 answer.")
    max_pending_requests: int = Field(
        default=256, ge=1, description="Requests waiting for Kafka before new ones get 503."
    )
    transactional_id: str = Field(
        default="",
        description="Kafka transactional.id of this collector instance; empty: derived from "
        "the host name and port. Two running collectors must never share one.",
    )

    @model_validator(mode="after")
    def _keys_usable(self) -> CollectorSettings:
        secrets = [key.secret.get_secret_value() for key in self.write_keys.values()]
        if len(set(secrets)) != len(secrets):
            raise ValueError("two write keys share one secret: each key needs its own")
        for name in self.write_keys:
            if not name or not name.isprintable() or len(name) > 64:
                raise ValueError(f"write key name {name[:64]!r} must be 1-64 printable characters")
        if self.dev_write_key and not is_loopback(self.host):
            raise ValueError("dev_write_key is for local development: the host must be loopback")
        admin = self.admin_key.get_secret_value()
        if admin and len(admin) < 32:
            raise ValueError("admin_key needs at least 32 characters")
        if admin and admin in secrets:
            raise ValueError("admin_key must differ from every write key secret")
        return self


class TopicSettings(BaseModel):
    """How the pipeline's topics are created (existing topics are never altered)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partitions: int = Field(default=3, ge=1, description="Partitions of every pipeline topic.")
    raw_retention_hours: float = Field(
        default=72.0,
        gt=0,
        description="Retention of touchpoints.<channel> (a foreign producer's clear PII may sit "
        "there until the ingest stage hashes it: keep it short).",
    )
    deadletter_retention_days: float = Field(default=30.0, gt=0)
    compaction_min_lag_hours: float = Field(
        default=24.0,
        gt=0,
        description="min.compaction.lag.ms of the compacted public topics (journeys.updates, "
        "identity.*): a consumer less than this far behind (the sink) sees every record.",
    )
    compaction_max_lag_hours: float = Field(
        default=48.0,
        gt=0,
        description="max.compaction.lag.ms of the compacted public topics: an erased "
        "customer's records are physically removed at most this long after its tombstone.",
    )

    @model_validator(mode="after")
    def _lags_ordered(self) -> TopicSettings:
        if self.compaction_max_lag_hours < self.compaction_min_lag_hours:
            raise ValueError("compaction_max_lag_hours must be >= compaction_min_lag_hours")
        return self


class WorkerSettings(BaseModel):
    """The Faust worker: app id (consumer group), table store and its web server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: str = Field(
        default="omnijourney",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="Faust app id: the consumer group and the prefix of internal topics.",
    )
    store: str = Field(
        default="memory://",
        pattern=r"^(memory|rocksdb|aerospike)://.*$",
        description="Table store: memory:// (tests) or rocksdb:// (rocksdict, on disk).",
    )
    host: str = Field(default="127.0.0.1", description="Listen address of the web server.")
    port: int = Field(default=6066, ge=1, le=65535, description="Port of /health and views.")
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error|critical)$")
    commit_interval_s: float = Field(
        default=2.8, gt=0, description="How often consumed offsets (and their outputs) commit."
    )
    batch_max: int = Field(
        default=500, ge=1, le=100_000, description="Most messages a stage takes at once."
    )
    batch_wait_ms: float = Field(
        default=5.0,
        gt=0,
        le=10_000,
        description="How long a stage waits to fill a batch (adds up to it to latency).",
    )
    commit_every: int = Field(
        default=10_000,
        ge=1,
        description="...or commit once a consumer has acknowledged this many messages.",
    )
    producer_linger_ms: float = Field(
        default=5.0,
        ge=0,
        le=1_000,
        description="How long the producer waits to fill a request: fewer, larger requests "
        "(decision 0015: 2.5x the throughput of 0 for at most this much latency per hop).",
    )
    producer_batch_bytes: int = Field(
        default=256 * 1024,
        ge=1_024,
        le=16 * 1024 * 1024,
        description="Most bytes of one partition's batch in a produce request.",
    )
    producer_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="none", description="Compression of the worker's produced batches."
    )
    fetch_partition_bytes: int = Field(
        default=1024 * 1024,
        ge=1_024,
        description="Most bytes one fetch returns per partition (max_partition_fetch_bytes).",
    )
    max_poll_records: int | None = Field(
        default=None, ge=1, description="Most records one poll hands over (None: no limit)."
    )
    stream_buffer: int = Field(
        default=4_096,
        ge=1,
        description="Messages buffered per partition between the consumer and the agents.",
    )
    hole_rewind_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A partition whose commit waits this long on offsets nobody will ack any more "
            "(lost by Faust in a rebalance) is read again from its commit (decision 0018)."
        ),
    )
    allowed_lateness_h: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Allowed lateness in hours by channel, overriding the core's retail defaults "
            "(key `*`: every channel). Later events are kept but not placed in journeys."
        ),
    )

    @field_validator("allowed_lateness_h")
    @classmethod
    def _lateness_is_sane(cls, value: dict[str, float]) -> dict[str, float]:
        for channel, hours in value.items():
            if not 0 <= hours <= 24 * 90:
                raise ValueError(f"{channel}: lateness must be 0..2160 hours, got {hours}")
        return value


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
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
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
