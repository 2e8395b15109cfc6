"""The local Apache Kafka broker: KRaft nodes from the official jars on Maven Central.

One node by default (``kafka.brokers=1``); everything lives below ``settings.path("kafka")``::

    libs/               the broker's jars (resolved by Maven) and fetched.json (what was resolved)
    data/               log.dirs, formatted once by the KRaft storage tool
    cluster.id          the cluster id the data dir was formatted with
    server.properties   generated from settings on every start
    log4j.properties    the broker logs to stdout, which goes to broker.log
    broker.log, broker.pid

With ``kafka.brokers=N`` (N > 1) a local cluster of N combined broker+controller nodes runs
from the same jars, each node in its own directory::

    cluster/cluster.json    cluster id and node count the nodes were formatted with
    cluster/log4j.properties
    cluster/node-K/         server.properties, data/, broker.log, broker.pid of node K (1..N)

The functions are blocking (they run short asyncio loops of their own): call them from
synchronous code, never from inside a running event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from aiokafka.errors import KafkaError

from omnijourney.exceptions import ConfigurationError, PrerequisiteMissing, ServiceError
from omnijourney.local.admin import cluster_brokers, topic_replication
from omnijourney.local.process import ManagedProcess, ensure_port_free, port_accepts
from omnijourney.settings import KafkaSettings, Settings

MIN_JAVA = 17
POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
_STAMP = "fetched.json"
_MAX_LOG_BYTES = 20 * 1024 * 1024
_PROBE_TIMEOUT_S = 2.0


def _home(settings: Settings) -> Path:
    return settings.path("kafka")


def _libs(settings: Settings) -> Path:
    return _home(settings) / "libs"


def _data(settings: Settings) -> Path:
    return _home(settings) / "data"


def _server_properties(settings: Settings) -> Path:
    return _home(settings) / "server.properties"


def _process(settings: Settings) -> ManagedProcess:
    home = _home(settings)
    # Our own server.properties path is on the broker's command line and on no other broker's,
    # so a pid reused by another program (or another broker) is never taken for ours.
    return ManagedProcess(
        name="Kafka broker",
        pidfile=home / "broker.pid",
        logfile=home / "broker.log",
        marker=str(_server_properties(settings)),
    )


def running_single_pid(settings: Settings) -> int | None:
    """The pid of the single local broker (kafka.brokers=1) we started, or None."""
    return _process(settings).pid()


def running_pid(settings: Settings) -> int | None:
    """The pid of the local broker we started (of the first running node of a cluster), or None."""
    if settings.kafka.brokers == 1:
        return running_single_pid(settings)
    from omnijourney.local import kafka_cluster

    pids = kafka_cluster.running_pids(settings)
    return pids[min(pids)] if pids else None


# ---------------------------------------------------------------------------------------- fetch


def _stamp_value(kafka: KafkaSettings) -> dict[str, str]:
    return {"kafka": kafka.version, "scala": kafka.scala_version}


def libs_complete(libs: Path, kafka: KafkaSettings) -> bool:
    """True when libs/ holds every jar a previous fetch of this Kafka version resolved."""
    try:
        stamp = json.loads((libs / _STAMP).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("release") != _stamp_value(kafka):
        return False
    jars = stamp.get("jars")
    if not isinstance(jars, list) or not jars:
        return False
    return all((libs / str(jar)).is_file() for jar in jars)


def _require_maven(maven: str) -> str:
    exe = shutil.which(maven)
    if exe is None:
        raise PrerequisiteMissing(
            f"Maven ({maven!r}) not found, needed once to resolve the Kafka jars: install Maven "
            "3.6+ (e.g. `apt-get install maven`) or set OMNIJOURNEY_KAFKA__MAVEN"
        )
    return exe


def maven_error(output: str) -> str:
    """The first error Maven reported (colour codes removed), or its last line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in output.splitlines()]
    errors = [line for line in lines if line.startswith("[ERROR]") and len(line) > 8]
    found = errors[0] if errors else next((line for line in reversed(lines) if line), "")
    return found[:600]


def _maven(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)


def fetch(settings: Settings) -> str:
    """Resolve the broker's jars into libs/ with Maven (offline from ~/.m2 first)."""
    kafka = settings.kafka
    libs = _libs(settings)
    if libs_complete(libs, kafka):
        count = len(list(libs.glob("*.jar")))
        return f"Kafka {kafka.version} jars already in {libs} ({count} jars)"
    if not POM.is_file():
        raise PrerequisiteMissing(f"{POM} is missing: run omnijourney from a checkout")
    maven = _require_maven(kafka.maven)
    # Resolve into a side directory and rename it, so an interrupted fetch never looks complete.
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    goal = [
        "-B",
        "-q",
        "-f",
        str(POM),
        f"-Dkafka.version={kafka.version}",
        f"-Dscala.binary.version={kafka.scala_version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    source = "offline from ~/.m2"
    result = _maven([maven, "-o", *goal])
    if result.returncode != 0:
        source = "from Maven Central"
        result = _maven([maven, *goal])
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise ServiceError(
            f"Maven could not resolve Kafka {kafka.version} (is Maven Central reachable?): "
            + maven_error(result.stdout + result.stderr)
        )
    jars = sorted(p.name for p in staging.glob("*.jar"))
    main_jar = f"kafka_{kafka.scala_version}-{kafka.version}.jar"
    if main_jar not in jars:
        raise ServiceError(f"Maven finished but {main_jar} is not among the resolved jars")
    stamp = {"release": _stamp_value(kafka), "jars": jars}
    (staging / _STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return f"Kafka {kafka.version} jars resolved into {libs} ({len(jars)} jars, {source})"


# ---------------------------------------------------------------------------------------- java


def java_major(version_output: str) -> int | None:
    """The major Java version in the output of `java -version` (1.8 -> 8), or None."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _require_java(java: str) -> str:
    exe = shutil.which(java)
    advice = "install a JDK 17 or newer (e.g. `apt-get install openjdk-17-jre-headless`) or set "
    advice += "OMNIJOURNEY_KAFKA__JAVA to one"
    if exe is None:
        raise PrerequisiteMissing(f"Java ({java!r}) not found, Kafka needs it: {advice}")
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=60, check=False)
    major = java_major(out.stderr + out.stdout)
    if major is None or major < MIN_JAVA:
        found = f"Java {major}" if major else "an unknown Java version"
        raise PrerequisiteMissing(f"Kafka needs Java {MIN_JAVA}+, found {found} at {exe}: {advice}")
    return exe


# -------------------------------------------------------------------------------------- config


def new_cluster_id() -> str:
    """A random KRaft cluster id in Kafka's Uuid text form (22 url-safe base64 characters)."""
    while True:
        text = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
        # Kafka never issues ids starting with "-": they read like command line options.
        if not text.startswith("-"):
            return text


def _advertised_host(host: str) -> str:
    # A wildcard listen address cannot be handed to clients as an address to connect to.
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def server_properties(kafka: KafkaSettings, data_dir: Path, node_id: int = 1) -> str:
    """The configuration of one combined broker+controller node (node 1 of kafka.brokers)."""
    host, advertised = kafka.host, _advertised_host(kafka.host)
    ports = {nid: (port, controller) for nid, port, controller in kafka.nodes()}
    if node_id not in ports:
        raise ConfigurationError(f"node {node_id} is not one of the {kafka.brokers} local nodes")
    port, controller = ports[node_id]
    # With one node every replication factor and ISR minimum must be 1 or nothing works; with
    # three, internal topics survive a lost node and acks=all writes still need two copies.
    replicas, min_isr = topic_replication(kafka.brokers)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": ",".join(
            f"{nid}@{advertised}:{c}" for nid, (_, c) in ports.items()
        ),
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{advertised}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(kafka.default_partitions),
        "default.replication.factor": str(replicas),
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_isr),
        "min.insync.replicas": str(min_isr),
        "auto.create.topics.enable": "true",
        # Local consumers start together: do not make the first one wait 3 s for others.
        "group.initial.rebalance.delay.ms": "0",
    }
    if kafka.brokers > 1:
        # Never elect a replica that missed acknowledged writes (Kafka's default, made explicit).
        props["unclean.leader.election.enable"] = "false"
    lines = ["# Generated by omnijourney from settings on every start; edits are lost."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


LOG4J_PROPERTIES = """\
# Generated by omnijourney: the broker logs to stdout, which is appended to broker.log.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.zookeeper=WARN
"""


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _write_config(settings: Settings) -> tuple[Path, Path]:
    home = _home(settings)
    home.mkdir(parents=True, exist_ok=True)
    config = _server_properties(settings)
    log4j = home / "log4j.properties"
    _write_if_changed(config, server_properties(settings.kafka, _data(settings)))
    _write_if_changed(log4j, LOG4J_PROPERTIES)
    return config, log4j


def _jvm(
    java: str, settings: Settings, log4j: Path, heap: str, logs_dir: Path | None = None
) -> list[str]:
    return [
        java,
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        "-Duser.timezone=UTC",
        f"-Dlog4j.configuration=file:{log4j}",
        f"-Dkafka.logs.dir={logs_dir or _home(settings)}",
        "-cp",
        f"{_libs(settings)}/*",
    ]


def _cluster_id(settings: Settings) -> str:
    path = _home(settings) / "cluster.id"
    with contextlib.suppress(OSError):
        existing = path.read_text().strip()
        if existing:
            return existing
    cluster_id = new_cluster_id()
    path.write_text(cluster_id + "\n")
    return cluster_id


def format_command(
    java: str, settings: Settings, log4j: Path, cluster_id: str, config: Path
) -> list[str]:
    """The KRaft storage tool run that formats the log dirs named in config (once)."""
    argv = _jvm(java, settings, log4j, "256m", config.parent)
    argv += ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]
    return [*argv, "--ignore-formatted"]


def format_failure(data: Path, output: str) -> ServiceError:
    """The error for a storage tool run that failed, with the end of its output."""
    tail = " | ".join(output.strip().splitlines()[-5:])
    return ServiceError(f"formatting Kafka storage in {data} failed: {tail}")


def _format_storage_once(settings: Settings, java: str, config: Path, log4j: Path) -> None:
    data = _data(settings)
    if (data / "meta.properties").is_file():
        return
    data.mkdir(parents=True, exist_ok=True)
    argv = format_command(java, settings, log4j, _cluster_id(settings), config)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise format_failure(data, result.stdout + result.stderr)


# ------------------------------------------------------------------------------- start / stop


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    # Probing a broker that is still starting logs connection errors; they are expected here.
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def broker_answers(bootstrap: str, timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
    """True when the cluster at bootstrap answers a metadata request naming a broker."""
    with _quiet("aiokafka"):
        try:
            return asyncio.run(cluster_brokers(bootstrap, timeout_s)) > 0
        except (KafkaError, OSError, TimeoutError):  # a broker still starting fails these ways
            return False


def _rotate_log(logfile: Path) -> None:
    with contextlib.suppress(OSError):
        if logfile.stat().st_size > _MAX_LOG_BYTES:
            logfile.replace(logfile.with_name(logfile.name + ".1"))


def _wait_ready(settings: Settings, proc: ManagedProcess, pid: int) -> None:
    kafka = settings.kafka
    deadline = time.monotonic() + kafka.start_timeout_s
    while True:
        if proc.exited_early(pid):
            raise ServiceError(
                f"Kafka broker (pid {pid}) exited while starting; end of {proc.logfile}:\n"
                + proc.log_tail(25)
            )
        if port_accepts(kafka.host, kafka.port) and broker_answers(kafka.bootstrap):
            return
        if time.monotonic() > deadline:
            tail = proc.log_tail(25)
            # Do not leave a half-started broker holding the ports and the pid file.
            proc.stop(timeout=kafka.stop_timeout_s)
            raise ServiceError(
                f"Kafka broker did not answer on {kafka.bootstrap} within "
                f"{kafka.start_timeout_s:.0f}s and was stopped; end of {proc.logfile}:\n{tail}"
            )
        time.sleep(0.3)


def _refuse_cluster(settings: Settings) -> None:
    from omnijourney.local import kafka_cluster

    pids = kafka_cluster.running_pids(settings)
    if pids:
        raise ConfigurationError(
            f"the local Kafka cluster of this data dir runs ({len(pids)} nodes): stop it first "
            "(omnijourney kafka stop) or start it with --brokers / OMNIJOURNEY_KAFKA__BROKERS"
        )


def start(settings: Settings) -> str:
    """Start the local broker, or every missing node of the local cluster (idempotent)."""
    kafka = settings.kafka
    if kafka.bootstrap_servers:
        return f"Kafka: using the cluster at {kafka.bootstrap_servers}; no local broker started"
    if kafka.brokers > 1:
        from omnijourney.local import kafka_cluster

        return kafka_cluster.start(settings)
    proc = _process(settings)
    pid = proc.pid()
    if pid is not None:
        return f"Kafka already running (pid {pid}) at {kafka.bootstrap}"
    _refuse_cluster(settings)
    java = _require_java(kafka.java)
    ensure_port_free(kafka.host, kafka.port, "Kafka broker")
    ensure_port_free(kafka.host, kafka.controller_port, "Kafka controller")
    fetch(settings)
    config, log4j = _write_config(settings)
    _format_storage_once(settings, java, config, log4j)
    _rotate_log(proc.logfile)
    argv = [*_jvm(java, settings, log4j, kafka.heap), "kafka.Kafka", str(config)]
    pid = proc.spawn(argv)
    _wait_ready(settings, proc, pid)
    return (
        f"Kafka {kafka.version} started (pid {pid}) at {kafka.bootstrap}, data in {_data(settings)}"
    )


def stop(settings: Settings) -> str:
    """Stop every broker of ours: the single one and any cluster node (TERM, then KILL)."""
    from omnijourney.local import kafka_cluster

    lines = []
    proc = _process(settings)
    pid = proc.pid()
    if pid is not None:
        proc.stop(timeout=settings.kafka.stop_timeout_s)
        lines.append(f"Kafka stopped (pid {pid})")
    cluster = kafka_cluster.stop(settings)
    if cluster is not None:
        lines.append(cluster)
    return "\n".join(lines) or "Kafka is not running (no broker of ours to stop)"


def _single_status(settings: Settings) -> str:
    kafka = settings.kafka
    pid = running_single_pid(settings)
    if pid is not None:
        return (
            f"Kafka {kafka.version} running (pid {pid}) at {kafka.host}:{kafka.port}, "
            f"data in {_data(settings)}, log {_process(settings).logfile}"
        )
    held = port_accepts(kafka.host, kafka.port)
    bootstrap = f"{kafka.host}:{kafka.port}"
    other = f"; {bootstrap} is held by another program" if held else ""
    return f"Kafka is not running (would listen on {bootstrap}){other}"


def status(settings: Settings) -> str:
    """What runs where: pid, bootstrap address and data dir of every node, or "not running"."""
    from omnijourney.local import kafka_cluster

    kafka = settings.kafka
    if kafka.bootstrap_servers:
        return f"Kafka: using the cluster at {kafka.bootstrap_servers} (no local broker)"
    if kafka.brokers > 1:
        lines = [kafka_cluster.status(settings)]
        if running_single_pid(settings) is not None:
            lines.append(_single_status(settings))
        return "\n".join(lines)
    if kafka_cluster.running_pids(settings):
        # Started with --brokers N: show that cluster (and the single broker only if it runs).
        lines = [kafka_cluster.status(kafka_cluster.as_formatted(settings))]
        if running_single_pid(settings) is not None:
            lines.insert(0, _single_status(settings))
        return "\n".join(lines)
    return _single_status(settings)
