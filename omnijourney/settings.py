"""One frozen, typed settings object for every omnijourney process (env prefix OMNIJOURNEY_)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseModel):
    """Where Kafka is and how the local broker is run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(
        default="", description="Comma-separated bootstrap list; empty means the local broker."
    )
    host: str = Field(default="127.0.0.1", description="Listen address of the local broker.")
    port: int = Field(default=9092, ge=1, le=65535, description="Port of the local broker.")
    controller_port: int = Field(default=9093, ge=1, le=65535)
    version: str = Field(default="3.9.2", description="Apache Kafka release of the local broker.")
    scala_version: str = "2.13"
    heap: str = Field(default="512m", description="JVM heap of the local broker.")
    default_partitions: int = Field(default=3, ge=1)
    start_timeout_s: float = Field(default=90.0, gt=0)

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
    return Settings(**overrides)  # type: ignore[arg-type]
