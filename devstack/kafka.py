"""A single-node Apache Kafka broker (KRaft combined mode) on loopback.

Layout under ``<state>/kafka``: ``server.properties``, ``log4j2.yaml``, ``kafka.log``
(the broker's output), ``kafka.pid`` (JSON: pid and ports) and ``data/``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
from pydantic import BaseModel, ValidationError

from devstack.errors import DevStackError
from devstack.kafka_dist import java_executable, kafka_libs, resource_text
from devstack.kafka_probe import metadata_ready
from devstack.paths import (
    HOST,
    KAFKA_CONTROLLER_PORT_ENV,
    KAFKA_PORT_ENV,
    Ports,
    ensure_dir,
)
from devstack.processes import (
    is_alive,
    port_accepts,
    process_if_ours,
    require_free_port,
    run,
    say,
    show_tail,
    spawn_detached,
    terminate,
    write_private,
)

READY_TIMEOUT = 60.0
STOP_GRACE = 30.0
# A fixed 512 MB heap (the JVM's default would be a quarter of the RAM) and the
# parallel collector. With the serial collector and a 128 MB heap that grew, the
# broker paused about once a second for 12-30 ms and, once its old generation
# filled, for ~100 ms; every fetch and offset commit waits out a pause. On the
# two cores of the benchmark machine the parallel collector paused least of the
# four collectors tried (ADR 0017).
JVM_OPTIONS = ("-Xms512m", "-Xmx512m", "-XX:+UseParallelGC")


@dataclass(frozen=True)
class KafkaPaths:
    """Files of the broker under ``<state>/kafka``."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j2.yaml"

    @property
    def log(self) -> Path:
        return self.root / "kafka.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"


class PidRecord(BaseModel):
    """What ``kafka.pid`` records about the broker we started."""

    pid: int
    port: int
    controller_port: int


@dataclass(frozen=True)
class Broker:
    """A broker process of ours (not necessarily ready yet)."""

    pid: int
    port: int
    reused: bool
    started_at: float


def paths_for(state: Path) -> KafkaPaths:
    """The broker's file layout inside the state directory ``state``."""
    return KafkaPaths(state / "kafka")


def find_running(paths: KafkaPaths) -> tuple[psutil.Process, PidRecord] | None:
    """Our broker, from its pid file, if that process is alive and really ours."""
    record = _read_pid_file(paths)
    if record is None:
        return None
    # The config path in the command line proves the pid was not recycled.
    process = process_if_ours(record.pid, str(paths.config))
    return (process, record) if process is not None else None


def check_reusable(paths: KafkaPaths, ports: Ports) -> Broker | None:
    """Our running broker if its ports are the requested ones; None if not running."""
    running = find_running(paths)
    if running is None:
        return None
    process, record = running
    if (record.port, record.controller_port) != (ports.kafka, ports.kafka_controller):
        raise DevStackError(
            f"kafka: already running (pid {process.pid}) on ports {record.port}/"
            f"{record.controller_port}, not the requested {ports.kafka}/"
            f"{ports.kafka_controller}; run `programmes dev down` first"
        )
    return Broker(pid=process.pid, port=record.port, reused=True, started_at=time.monotonic())


def require_ports(ports: Ports) -> None:
    """Fail early if the broker's ports are held by someone else."""
    require_free_port(ports.kafka, component="kafka", env_var=KAFKA_PORT_ENV)
    require_free_port(
        ports.kafka_controller, component="kafka controller", env_var=KAFKA_CONTROLLER_PORT_ENV
    )


def start(paths: KafkaPaths, ports: Ports) -> Broker:
    """Write the config, format storage on first use and launch the broker detached.

    Returns at once; call ``wait_ready`` before using the broker, which lets the caller
    start PostgreSQL while the JVM boots.
    """
    java = java_executable()
    classpath = f"{kafka_libs()}/*"
    ensure_dir(paths.root)
    ensure_dir(paths.data)
    paths.config.write_text(_server_properties(paths, ports), encoding="utf-8")
    paths.log4j.write_text(resource_text("log4j2.yaml"), encoding="utf-8")
    _format_storage(java, classpath, paths)
    command = [
        java,
        *JVM_OPTIONS,
        # JVM crash reports go to the cwd by default, i.e. wherever `up` was run.
        f"-XX:ErrorFile={paths.root / 'hs_err_pid%p.log'}",
        f"-Dlog4j2.configurationFile={paths.log4j}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(paths.config),
    ]
    started_at = time.monotonic()
    pid = spawn_detached(command, log_path=paths.log)
    record = PidRecord(pid=pid, port=ports.kafka, controller_port=ports.kafka_controller)
    write_private(paths.pid_file, record.model_dump_json(), mode=0o644)
    return Broker(pid=pid, port=ports.kafka, reused=False, started_at=started_at)


def _server_properties(paths: KafkaPaths, ports: Ports) -> str:
    controller = f"{HOST}:{ports.kafka_controller}"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{controller}",
        "listeners": f"PLAINTEXT://{HOST}:{ports.kafka},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{ports.kafka}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(paths.data),
        "num.partitions": "3",
        # Single node: every internal topic has one replica. Few offsets partitions
        # make the group coordinator come up fast on the first consumer group.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Tests create groups constantly; do not wait 3 s for more members to join.
        "group.initial.rebalance.delay.ms": "0",
        # The default (128 MB) is wasted on a dev box; 1 MB is rejected as too small.
        "log.cleaner.dedupe.buffer.size": "2097152",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    return "# Written by devstack on each start; edits are overwritten.\n" + "\n".join(lines) + "\n"


def _format_storage(java: str, classpath: str, paths: KafkaPaths) -> None:
    """Format the KRaft log dir once (the presence of meta.properties means done)."""
    if (paths.data / "meta.properties").exists():
        return
    say("kafka: formatting storage (first run only)…")
    run(
        [
            java,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _random_cluster_id(),
            "-c",
            str(paths.config),
        ],
        what="kafka-storage format",
        cwd=paths.root,
    )


def _random_cluster_id() -> str:
    """A cluster id as ``kafka-storage random-uuid`` makes it, minus a JVM start.

    Kafka ids are 16 random bytes in unpadded URL-safe base64; Kafka's own generator
    rejects ids starting with '-' (they look like command-line options).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def wait_ready(paths: KafkaPaths, broker: Broker, *, timeout: float = READY_TIMEOUT) -> None:
    """Block until the broker answers metadata requests, or fail pointing at its log."""
    bootstrap = f"{HOST}:{broker.port}"
    process = psutil.Process(broker.pid)
    deadline = broker.started_at + timeout
    while time.monotonic() < deadline:
        if not is_alive(process):
            show_tail(paths.log)
            raise DevStackError(f"kafka: broker exited during startup; see {paths.log}")
        if port_accepts(broker.port) and metadata_ready(bootstrap):
            if not broker.reused:
                elapsed = time.monotonic() - broker.started_at
                say(f"kafka: started pid {broker.pid} on {bootstrap} in {elapsed:.1f} s")
            return
        time.sleep(0.2)
    show_tail(paths.log)
    raise DevStackError(
        f"kafka: broker pid {broker.pid} not ready on {bootstrap} after {timeout:.0f} s; "
        f"see {paths.log}"
    )


def stop(paths: KafkaPaths) -> None:
    """Stop the broker we started (SIGTERM, then SIGKILL after STOP_GRACE seconds)."""
    running = find_running(paths)
    if running is None:
        say("kafka: not running")
        paths.pid_file.unlink(missing_ok=True)
        return
    process, _ = running
    say(f"kafka: stopping pid {process.pid}…")
    started = time.monotonic()
    clean = terminate(process, grace=STOP_GRACE)
    paths.pid_file.unlink(missing_ok=True)
    how = "stopped" if clean else f"killed (no exit {STOP_GRACE:.0f} s after SIGTERM)"
    say(f"kafka: {how} in {time.monotonic() - started:.1f} s")


def _read_pid_file(paths: KafkaPaths) -> PidRecord | None:
    try:
        return PidRecord.model_validate_json(paths.pid_file.read_text(encoding="utf-8"))
    except (OSError, ValidationError, json.JSONDecodeError):
        return None
