"""The local Kafka cluster: several KRaft nodes on loopback, all from the one set of Maven jars.

Used when ``kafka.brokers`` is above 1. Every node is a combined broker+controller (the
controller quorum is all nodes, static ``controller.quorum.voters``); node K (1..N) listens on
``port + 2(K-1)`` and ``controller_port + 2(K-1)`` and keeps its state in
``<data dir>/kafka/cluster/node-K``. The layout of the single broker is not touched.

The functions are blocking, like those of ``omnijourney.local.kafka``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka.errors import KafkaError

from omnijourney.exceptions import ConfigurationError, ServiceError
from omnijourney.local import kafka as single
from omnijourney.local.admin import cluster_broker_ids
from omnijourney.local.process import (
    ManagedProcess,
    ensure_port_free,
    port_accepts,
    stop_together,
    wait_until,
)
from omnijourney.settings import Settings

_RECORD = "cluster.json"
_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Node:
    """One node of the local cluster and where it keeps its state."""

    node_id: int
    home: Path
    host: str
    port: int
    controller_port: int

    @property
    def config(self) -> Path:
        """Its server.properties (the marker that tells its process from any other)."""
        return self.home / "server.properties"

    @property
    def data(self) -> Path:
        """Its log.dirs."""
        return self.home / "data"

    @property
    def process(self) -> ManagedProcess:
        """Its pid file, log and marker."""
        return ManagedProcess(
            name=f"Kafka node {self.node_id}",
            pidfile=self.home / "broker.pid",
            logfile=self.home / "broker.log",
            marker=str(self.config),
        )


def cluster_home(settings: Settings) -> Path:
    """Where the local cluster keeps its nodes."""
    return settings.path("kafka", "cluster")


def nodes(settings: Settings) -> list[Node]:
    """The nodes the settings describe (kafka.brokers of them)."""
    kafka, home = settings.kafka, cluster_home(settings)
    return [
        Node(nid, home / f"node-{nid}", kafka.host, port, controller)
        for nid, port, controller in kafka.nodes()
    ]


def _present(settings: Settings) -> list[Node]:
    """The nodes of the settings plus any other node directory a former start left behind."""
    wanted = nodes(settings)
    known = {node.node_id for node in wanted}
    home = cluster_home(settings)
    others = []
    for path in sorted(home.glob("node-*")) if home.is_dir() else []:
        suffix = path.name.removeprefix("node-")
        if suffix.isdigit() and int(suffix) not in known:
            others.append(Node(int(suffix), path, settings.kafka.host, 0, 0))
    return wanted + others


def _node(settings: Settings, node_id: int) -> Node:
    for node in nodes(settings):
        if node.node_id == node_id:
            return node
    raise ConfigurationError(
        f"node {node_id} is not one of the {settings.kafka.brokers} local nodes (1..N)"
    )


def running_pids(settings: Settings) -> dict[int, int]:
    """{node id: pid} of the nodes of ours that run (any count, whatever the settings say)."""
    found = {node.node_id: node.process.pid() for node in _present(settings)}
    return {nid: pid for nid, pid in found.items() if pid is not None}


def _bootstrap(node: Node) -> str:
    return f"{node.host}:{node.port}"


def live_broker_ids(bootstrap: str, timeout_s: float = _PROBE_TIMEOUT_S) -> set[int]:
    """The broker ids the cluster names as live, or an empty set when nobody answers."""
    with single._quiet("aiokafka"):
        try:
            return asyncio.run(cluster_broker_ids(bootstrap, timeout_s))
        except (KafkaError, OSError, TimeoutError):  # nodes still starting fail these ways
            return set()


# -------------------------------------------------------------------------------- config


def _recorded(settings: Settings) -> dict[str, object] | None:
    """The cluster id and node count the nodes were formatted with, if they were."""
    try:
        record = json.loads((cluster_home(settings) / _RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def as_formatted(settings: Settings) -> Settings:
    """The settings with the node count the local cluster was formatted with (for status)."""
    record = _recorded(settings)
    count = record.get("brokers") if record else None
    if not isinstance(count, int) or count == settings.kafka.brokers:
        return settings
    kafka = settings.kafka.model_copy(update={"brokers": count})
    return settings.model_copy(update={"kafka": kafka})


def _check_node_count(settings: Settings) -> None:
    record = _recorded(settings)
    brokers = settings.kafka.brokers
    if record is not None and record.get("brokers") != brokers:
        home = cluster_home(settings)
        raise ConfigurationError(
            f"the local Kafka cluster in {home} was formatted with {record.get('brokers')} "
            f"nodes, not {brokers}: stop it and remove {home} to change the node count"
        )


def _cluster_id(settings: Settings) -> str:
    """The cluster id shared by every node (made and recorded on the first start)."""
    record = _recorded(settings)
    if record is not None and isinstance(record.get("cluster_id"), str):
        return str(record["cluster_id"])
    cluster_id = single.new_cluster_id()
    path = cluster_home(settings) / _RECORD
    path.write_text(json.dumps({"cluster_id": cluster_id, "brokers": settings.kafka.brokers}))
    return cluster_id


def _write_configs(settings: Settings) -> Path:
    home = cluster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    log4j = home / "log4j.properties"
    single._write_if_changed(log4j, single.LOG4J_PROPERTIES)
    for node in nodes(settings):
        node.home.mkdir(exist_ok=True)
        text = single.server_properties(settings.kafka, node.data, node.node_id)
        single._write_if_changed(node.config, text)
    return log4j


def _format_once(settings: Settings, java: str, log4j: Path, todo: list[Node]) -> None:
    """Format the unformatted nodes among todo with the shared cluster id, in parallel."""
    cluster_id = _cluster_id(settings)
    runs = []
    for node in todo:
        if (node.data / "meta.properties").is_file():
            continue
        node.data.mkdir(parents=True, exist_ok=True)
        argv = single.format_command(java, settings, log4j, cluster_id, node.config)
        run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        runs.append((node, run))
    failures = []
    for node, formatting in runs:
        output, _ = formatting.communicate(timeout=120)
        if formatting.returncode != 0:
            failures.append(single.format_failure(node.data, output.decode(errors="replace")))
    if failures:
        raise failures[0]


# --------------------------------------------------------------------------- start / stop


def _refuse_single_broker(settings: Settings) -> None:
    pid = single.running_single_pid(settings)
    if pid is not None:
        raise ConfigurationError(
            f"the single local broker of this data dir runs (pid {pid}) on the ports the "
            "cluster needs: stop it first (omnijourney kafka stop)"
        )


def _all_agree(members: list[Node]) -> bool:
    """True when every member, asked on its own, names every member as a live broker."""
    # Asking one node is not enough: another may not have seen the newcomer register yet.
    wanted = {node.node_id for node in members}
    return all(
        port_accepts(node.host, node.port) and wanted <= live_broker_ids(_bootstrap(node))
        for node in members
    )


def _wait_ready(settings: Settings, spawned: dict[Node, int]) -> None:
    kafka = settings.kafka
    deadline = time.monotonic() + kafka.start_timeout_s
    wanted = {node.node_id for node in spawned}
    members = [node for node in nodes(settings) if node in spawned or node.process.pid()]
    while True:
        for node, pid in spawned.items():
            if node.process.exited_early(pid):
                tail = node.process.log_tail(25)
                _stop_nodes(list(spawned), kafka.stop_timeout_s)
                raise ServiceError(
                    f"Kafka node {node.node_id} (pid {pid}) exited while starting; end of "
                    f"{node.process.logfile}:\n{tail}"
                )
        if _all_agree(members):
            return
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- node {node.node_id}:\n{node.process.log_tail(10)}" for node in spawned
            )
            # Do not leave half-started nodes holding ports and pid files.
            _stop_nodes(list(spawned), kafka.stop_timeout_s)
            raise ServiceError(
                f"Kafka nodes {sorted(wanted)} did not join the cluster at {kafka.bootstrap} "
                f"within {kafka.start_timeout_s:.0f}s and were stopped; end of their logs:\n"
                + tails
            )
        time.sleep(0.3)


def _start(settings: Settings, todo: list[Node]) -> dict[Node, int]:
    """Start the nodes in todo (none of which runs) and wait until the cluster names them."""
    kafka = settings.kafka
    java = single._require_java(kafka.java)
    for node in todo:
        ensure_port_free(node.host, node.port, f"Kafka node {node.node_id} broker")
        ensure_port_free(node.host, node.controller_port, f"Kafka node {node.node_id} controller")
    single.fetch(settings)
    log4j = _write_configs(settings)
    _format_once(settings, java, log4j, todo)
    spawned: dict[Node, int] = {}
    for node in todo:
        single._rotate_log(node.process.logfile)
        argv = [*single._jvm(java, settings, log4j, kafka.heap, node.home), "kafka.Kafka"]
        spawned[node] = node.process.spawn([*argv, str(node.config)])
    _wait_ready(settings, spawned)
    return spawned


def _pids(found: dict[int, int]) -> str:
    return ", ".join(f"node {nid} pid {pid}" for nid, pid in sorted(found.items()))


def start(settings: Settings) -> str:
    """Start every node of the local cluster that is not running; return once all have joined."""
    kafka = settings.kafka
    _refuse_single_broker(settings)
    _check_node_count(settings)
    all_nodes = nodes(settings)
    running = {node.node_id: pid for node in all_nodes if (pid := node.process.pid())}
    todo = [node for node in all_nodes if node.node_id not in running]
    if not todo:
        return f"Kafka cluster already running ({_pids(running)}) at {kafka.bootstrap}"
    spawned = _start(settings, todo)
    started = {node.node_id: pid for node, pid in spawned.items()}
    if not running:
        return (
            f"Kafka {kafka.version} cluster of {kafka.brokers} nodes started ({_pids(started)}) "
            f"at {kafka.bootstrap}, data in {cluster_home(settings)}"
        )
    return (
        f"Kafka cluster: started {_pids(started)}; {_pids(running)} already running; "
        f"at {kafka.bootstrap}"
    )


def start_node(settings: Settings, node_id: int) -> str:
    """Start one node of the local cluster (for failure tests); return once it has joined."""
    node = _node(settings, node_id)
    _refuse_single_broker(settings)
    _check_node_count(settings)
    pid = node.process.pid()
    if pid is not None:
        return f"Kafka node {node_id} already running (pid {pid})"
    spawned = _start(settings, [node])
    return f"Kafka node {node_id} started (pid {spawned[node]}) at {_bootstrap(node)}"


def kill_node(settings: Settings, node_id: int, sig: int = signal.SIGKILL) -> int:
    """Send sig to one running node (for failure tests); wait until KILL/TERM/INT end it."""
    node = _node(settings, node_id)
    proc = node.process
    pid = proc.pid()
    if pid is None:
        raise ServiceError(f"Kafka node {node_id} is not running: nothing to signal")
    os.killpg(pid, sig)
    if sig in {signal.SIGKILL, signal.SIGTERM, signal.SIGINT}:
        timeout = settings.kafka.stop_timeout_s
        wait_until(lambda: proc.exited_early(pid), timeout, f"Kafka node {node_id} to exit")
    return pid


def _stop_nodes(todo: list[Node], timeout: float) -> dict[int, int]:
    """Stop the running nodes among todo together; {node id: pid}."""
    # Together: stopped one by one, the last nodes would lose their controller quorum and
    # hang in controlled shutdown until killed.
    by_name = {node.process.name: node.node_id for node in todo}
    stopped = stop_together([node.process for node in todo], timeout)
    return {by_name[name]: pid for name, pid in stopped.items()}


def stop(settings: Settings) -> str | None:
    """Stop every node of ours (of any former start); None when none ran."""
    stopped = _stop_nodes(_present(settings), settings.kafka.stop_timeout_s)
    return f"Kafka cluster stopped ({_pids(stopped)})" if stopped else None


def status(settings: Settings) -> str:
    """Every node: pid, ports and log, or not running."""
    kafka = settings.kafka
    running = running_pids(settings)
    lines = [
        f"Kafka {kafka.version} local cluster of {kafka.brokers} nodes at {kafka.bootstrap}, "
        f"data in {cluster_home(settings)}: {len(running)} of {kafka.brokers} running"
    ]
    for node in _present(settings):
        where = f"broker {node.host}:{node.port}, controller {node.host}:{node.controller_port}"
        pid = running.get(node.node_id)
        if node.port == 0:  # left by a start with more nodes than the settings name now
            state = f"running (pid {pid})" if pid else "not running"
            lines.append(f"  node {node.node_id}: {state} (not in the settings' cluster)")
        elif pid is not None:
            lines.append(
                f"  node {node.node_id}: running (pid {pid}), {where}, log {node.process.logfile}"
            )
        else:
            held = port_accepts(node.host, node.port)
            other = "; the broker port is held by another program" if held else ""
            lines.append(f"  node {node.node_id}: not running (would listen on {where}){other}")
    return "\n".join(lines)
