"""Apache Kafka in KRaft mode from Maven Central jars: one node, or a cluster of several.

Every node runs both roles (broker and controller) on 127.0.0.1. One node keeps its files in
``<data_dir>/kafka`` and forms a single-voter quorum (``--standalone``); N nodes keep theirs in
``<data_dir>/kafka/node-<id>``, listen on consecutive ports (clients ``P..P+N-1``, controllers
``C..C+N-1``) and form an N-voter quorum (``controller.quorum.voters``). Storage is formatted once,
with one cluster id for all nodes (kept in ``<data_dir>/kafka/cluster.id``); every node tiers to
the same remote directory, so a new leader serves what the old one uploaded.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException

from lakeless.config import KafkaSettings
from lakeless.errors import StackError
from lakeless.kafka import make_admin
from lakeless.kafka._topics import replication_for
from lakeless.stack._process import Daemon, port_answers, port_is_free

if TYPE_CHECKING:
    from lakeless.stack._security import StackSecurity

logger = logging.getLogger(__name__)

#: Where `make setup` (infra/pom.xml) puts the jars, relative to the repository root.
JARS_SUBDIR = Path("infra/target/kafka-libs")
_MIN_JAVA = 17


def find_jars_dir(explicit: Path | None = None) -> Path:
    """The folder holding Kafka's jars: ``explicit``, ``$LAKELESS_KAFKA_LIBS``, or the repo's.

    Raises:
        StackError: no folder with a ``kafka_2.13-*.jar`` was found.
    """
    candidates = [explicit] if explicit else []
    if env := os.environ.get("LAKELESS_KAFKA_LIBS"):
        candidates.append(Path(env))
    # An editable install sits in <repo>/src/lakeless; otherwise look from the working directory.
    candidates += [Path(__file__).resolve().parents[3] / JARS_SUBDIR, Path.cwd() / JARS_SUBDIR]
    for folder in candidates:
        if folder and any(folder.glob("kafka_2.13-*.jar")):
            return folder.resolve()
    raise StackError(
        "Kafka's jars are missing: run `make setup` (it fetches them with Maven into "
        f"{JARS_SUBDIR}) or point LAKELESS_KAFKA_LIBS at a folder of Kafka jars"
    )


def kafka_version(jars_dir: Path) -> str:
    """Kafka's version, read from the broker jar's file name."""
    for jar in jars_dir.glob("kafka_2.13-*.jar"):
        if match := re.fullmatch(r"kafka_2\.13-(.+)\.jar", jar.name):
            return match.group(1)
    raise StackError(f"no kafka_2.13 jar in {jars_dir}")


def find_java() -> str:
    """A ``java`` executable of version 17 or newer (``$JAVA_HOME`` first, then ``PATH``).

    Raises:
        StackError: Java is missing or too old.
    """
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise StackError("Java is missing: Kafka needs Java 17 or newer (install OpenJDK 17)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < _MIN_JAVA:
        raise StackError(f"{java} is too old for Kafka 4 (needs {_MIN_JAVA}+): {out.strip()}")
    return java


class KafkaNode:
    """One KRaft node (broker and controller) of a `KafkaCluster`: its files, ports and process.

    Args:
        cluster: the cluster it belongs to.
        node_id: ``node.id`` (1-based).
        home: its folder (config, ``data``, ``logs``, pid file).
        kafka_port: client listener port.
        controller_port: controller listener port.
    """

    def __init__(
        self, cluster: KafkaCluster, node_id: int, home: Path, kafka_port: int, controller_port: int
    ) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.home = home
        self.kafka_port = kafka_port
        self.controller_port = controller_port
        self.daemon = Daemon(
            f"{cluster.name} node {node_id}", home / "kafka.pid", home / "logs" / "stdout.log"
        )

    @property
    def bootstrap(self) -> str:
        """``host:port`` of this node's client listener."""
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def log_dir(self) -> Path:
        """Where the node keeps its partitions (``log.dirs``)."""
        return self.home / "data"

    def pid(self) -> int | None:
        """The node's pid when running."""
        return self.daemon.pid()

    def formatted(self) -> bool:
        """Whether this node's storage was formatted already."""
        return (self.log_dir / "meta.properties").exists()

    def cluster_id(self) -> str | None:
        """The cluster id in this node's ``meta.properties``, if formatted."""
        try:
            text = (self.log_dir / "meta.properties").read_text()
        except FileNotFoundError:
            return None
        match = re.search(r"^cluster\.id=(\S+)$", text, re.MULTILINE)
        return match.group(1) if match else None

    def check_ports(self) -> None:
        """Raise `StackError` when another process holds one of this node's ports."""
        label = self.cluster.label
        for port, what in ((self.kafka_port, label), (self.controller_port, f"{label} controller")):
            if not port_is_free(port):
                raise StackError(f"port {port} for the {what} listener is taken by another process")

    def write_config(self) -> None:
        """Write ``server.properties`` and ``log4j2.properties`` (secrets: owner-only)."""
        cluster = self.cluster
        for folder in (self.log_dir, cluster.remote_dir, self.home / "logs"):
            folder.mkdir(parents=True, exist_ok=True)
        templates = resources.files("lakeless.stack") / "templates"
        listener = "SASL_SSL" if cluster.security else "PLAINTEXT"
        if len(cluster.nodes) == 1:
            quorum = f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}"
        else:
            voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in cluster.nodes)
            quorum = f"controller.quorum.voters={voters}"
        replicas, min_isr = replication_for(len(cluster.nodes))
        server = (
            (templates / "server.properties")
            .read_text()
            .format(
                node_id=self.node_id,
                quorum=quorum,
                listener=listener,
                kafka_port=self.kafka_port,
                controller_port=self.controller_port,
                log_dir=self.log_dir,
                nodes=len(cluster.nodes),
                replicas=replicas,
                min_isr=min_isr,
                remote_dir=cluster.remote_dir,
                tiered=str(cluster.tiered_storage).lower(),
                partitions=cluster.partitions,
                security=cluster.security.broker_properties() if cluster.security else "",
            )
        )
        cluster_extra = cluster.extra_config
        if cluster_extra:  # later keys win in a properties file
            server += "\n# Overrides (e.g. the S3 tier)\n"
            server += "".join(f"{key}={value}\n" for key, value in cluster_extra.items())
        path = self.home / "server.properties"
        # The secured config holds the inter-broker password: never readable by others.
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(server)
        (self.home / "log4j2.properties").write_text((templates / "log4j2.properties").read_text())

    def format(self, java: str, jars: Path, cluster_id: str) -> None:
        """Format this node's storage for ``cluster_id`` (SCRAM users added when secured).

        Raises:
            StackError: the storage tool failed.
        """
        argv = [
            java,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp",
            f"{jars}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.home / "server.properties"),
        ]
        if len(self.cluster.nodes) == 1:
            argv.append("--standalone")  # a dynamic single-voter quorum, as before
        if self.cluster.security:
            argv += self.cluster.security.format_arguments()
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage of node {self.node_id} failed:\n"
                + _redact(result.stdout + result.stderr, self.cluster.security)
            )
        logger.info("formatted Kafka storage in %s (cluster %s)", self.log_dir, cluster_id)

    def launch(self, java: str, jars: Path) -> subprocess.Popen[bytes]:
        """Start the node's JVM (detached; stdout and stderr to ``logs/stdout.log``)."""
        argv = [
            java,
            f"-Xms{self.cluster.heap}",
            f"-Xmx{self.cluster.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp",
            f"{jars}/*",
            "kafka.Kafka",
            str(self.home / "server.properties"),
        ]
        return self.daemon.start(argv)

    def registered(self, timeout: float = 2.0) -> bool:
        """Whether this node answers metadata requests and lists itself as a live broker."""
        if not port_answers(self.kafka_port):  # no client, no connection-refused log spam
            return False
        settings = self.cluster.client_settings(self.bootstrap)
        try:
            metadata = make_admin(settings, check=False).list_topics(timeout=timeout)
        except KafkaException:
            return False
        return self.node_id in metadata.brokers

    def log_tail(self) -> str:
        """The last lines of the node's stdout and ``server.log``, for error messages."""
        server_log = Daemon("kafka", self.daemon.pid_file, self.home / "logs" / "server.log")
        text = self.daemon.log_tail(10) + "\n" + server_log.log_tail(15)
        return _redact(text, self.cluster.security)


class KafkaCluster:
    """``brokers`` KRaft nodes on 127.0.0.1 with tiered storage to a local directory.

    `start` is idempotent: it starts whichever node is not running (a node killed with
    ``kill -9`` comes back with its data) and leaves the running ones alone.

    Args:
        data_dir: the stack's data folder; the cluster uses ``<data_dir>/kafka``.
        kafka_port: client listener port of node 1 (node ``i`` listens on ``kafka_port + i - 1``).
        controller_port: controller listener port of node 1 (likewise consecutive).
        brokers: number of nodes.
        tiered_storage: enable KIP-405 tiered storage (LocalTieredStorage).
        jars_dir: Kafka's jars (default: `find_jars_dir`).
        heap: JVM heap per node, e.g. ``"1g"``.
        partitions: broker default partition count.
        security: SASL_SSL, SCRAM users and ACL authorizer (see `lakeless.stack._security`);
            ``None``: a PLAINTEXT listener.
        extra_config: broker properties appended to (and so overriding) the template's, e.g.
            the S3 tier's (`lakeless.stack._s3.s3_tier_broker_config`).
        name: the cluster's folder under ``data_dir`` and its name in messages (``kafka``; the
            stack's analytics cluster is ``analytics``).
    """

    def __init__(
        self,
        data_dir: Path,
        kafka_port: int = 9092,
        controller_port: int = 9093,
        *,
        brokers: int = 1,
        tiered_storage: bool = True,
        jars_dir: Path | None = None,
        heap: str = "1g",
        partitions: int = 6,
        security: StackSecurity | None = None,
        extra_config: Mapping[str, str] | None = None,
        name: str = "kafka",
    ) -> None:
        if brokers < 1:
            raise StackError(f"a cluster needs at least one broker, not {brokers}")
        clients = set(range(kafka_port, kafka_port + brokers))
        controllers = set(range(controller_port, controller_port + brokers))
        if clients & controllers:
            raise StackError(
                f"{brokers} brokers need client ports {kafka_port}..{kafka_port + brokers - 1} "
                f"and controller ports {controller_port}..{controller_port + brokers - 1}: they "
                "overlap; choose another --controller-port"
            )
        self.name = name
        self.home = data_dir.resolve() / name
        self.kafka_port = kafka_port
        self.controller_port = controller_port
        self.tiered_storage = tiered_storage
        self._jars_dir = jars_dir
        self.heap = heap
        self.partitions = partitions
        self.security = security
        self.extra_config = dict(extra_config or {})
        self.nodes: list[KafkaNode] = []
        for index in range(brokers):
            home = self.home if brokers == 1 else self.home / f"node-{index + 1}"
            self.nodes.append(
                KafkaNode(self, index + 1, home, kafka_port + index, controller_port + index)
            )

    @property
    def bootstrap(self) -> str:
        """Every node's ``host:port``, comma-separated (the ``bootstrap.servers`` to use)."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def label(self) -> str:
        """``Kafka``, or ``analytics Kafka`` for the cluster named ``analytics`` (in messages)."""
        return "Kafka" if self.name == "kafka" else f"{self.name} Kafka"

    @property
    def log_dir(self) -> Path:
        """Node 1's ``log.dirs``."""
        return self.nodes[0].log_dir

    @property
    def remote_dir(self) -> Path:
        """Root of the local remote tier (``rsm.config.dir``), shared by every node."""
        return self.home / "remote"

    @property
    def jars_dir(self) -> Path:
        """Kafka's jars."""
        return find_jars_dir(self._jars_dir)

    @property
    def daemon(self) -> Daemon:
        """Node 1's process (the only one of a single-node cluster)."""
        return self.nodes[0].daemon

    def client_settings(self, bootstrap: str | None = None) -> KafkaSettings:
        """Client settings with full rights (the admin user when secured)."""
        servers = bootstrap or self.bootstrap
        if self.security is None:
            return KafkaSettings(bootstrap_servers=servers)
        return self.security.client_settings(servers)

    def cluster_id(self) -> str | None:
        """The cluster's id once its storage was formatted (``None`` before)."""
        with contextlib.suppress(FileNotFoundError):
            return (self.home / "cluster.id").read_text().strip()
        return next((found for node in self.nodes if (found := node.cluster_id())), None)

    def pid(self) -> int | None:
        """The pid of the first running node (of the only node, for one)."""
        for node in self.nodes:
            if (pid := node.pid()) is not None:
                return pid
        return None

    def pids(self) -> dict[int, int | None]:
        """Node id -> pid (``None``: not running)."""
        return {node.node_id: node.pid() for node in self.nodes}

    def start(self, timeout: float = 120.0) -> None:
        """Start every node that is not running, then wait until each is a live broker.

        The first start formats every node's storage; later starts keep the data.

        Raises:
            StackError: a port is taken, Java or the jars are missing, or a node died.
        """
        missing = [node for node in self.nodes if node.pid() is None]
        if not missing:
            logger.info(
                "%s already running (%s) on %s", self.label, self._pid_text(), self.bootstrap
            )
            return
        for node in missing:
            node.check_ports()
        java, jars = find_java(), self.jars_dir
        cluster_id = self._cluster_id()
        for node in missing:
            node.write_config()
            if not node.formatted():
                node.format(java, jars, cluster_id)
        started = time.monotonic()
        processes = {node.node_id: node.launch(java, jars) for node in missing}
        waiting = list(missing)
        try:
            while waiting:
                for node in list(waiting):
                    process = processes[node.node_id]
                    if process.poll() is not None:
                        node.daemon.pid_file.unlink(missing_ok=True)
                        raise StackError(
                            f"{self.label} node {node.node_id} exited with code "
                            f"{process.returncode} while starting; last log lines:\n"
                            f"{node.log_tail()}"
                        )
                    if node.registered():
                        waiting.remove(node)
                if waiting and time.monotonic() - started > timeout:
                    names = ", ".join(f"node {n.node_id} ({n.bootstrap})" for n in waiting)
                    raise StackError(
                        f"{self.label} {names} did not come up within {timeout:.0f}s; last log "
                        "lines:\n" + waiting[0].log_tail()
                    )
                if waiting:
                    time.sleep(0.2)
        except BaseException:
            self._stop_nodes([n for n in missing if n.pid() is not None], 30.0)
            raise
        logger.info(
            "%s %s up on %s in %.1fs (%s)",
            self.label,
            kafka_version(jars),
            self.bootstrap,
            time.monotonic() - started,
            self._pid_text(),
        )

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop every node cleanly (SIGTERM to all at once, then wait). Whether any ran."""
        return self._stop_nodes(self.nodes, timeout)

    def _stop_nodes(self, nodes: list[KafkaNode], timeout: float) -> bool:
        running = [node for node in nodes if node.pid() is not None]
        # All at once: nodes stopped one by one would each wait for a quorum that the
        # earlier ones took away.
        for node in running:
            node.daemon.signal_stop()
        deadline = time.monotonic() + timeout
        for node in running:
            node.daemon.stop(max(1.0, deadline - time.monotonic()))
        return bool(running)

    def _cluster_id(self) -> str:
        """The cluster's id: kept from the first format (or read from a formatted node)."""
        id_file = self.home / "cluster.id"
        with contextlib.suppress(FileNotFoundError):
            return id_file.read_text().strip()
        for node in self.nodes:
            if found := node.cluster_id():
                break
        else:
            found = _new_cluster_id()
        self.home.mkdir(parents=True, exist_ok=True)
        id_file.write_text(found + "\n")
        return found

    def _pid_text(self) -> str:
        return ", ".join(f"node {i} pid {pid}" for i, pid in self.pids().items())

    def _server_log_tail(self) -> str:
        return self.nodes[0].log_tail()


#: The single-node broker the tests and benchmarks start (a `KafkaCluster` of one by default).
KafkaBroker = KafkaCluster


def _new_cluster_id() -> str:
    # Kafka's format: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _redact(text: str, security: StackSecurity | None) -> str:
    return security.redact(text) if security else text


def run_kafka_tool(main_class: str, *args: str, timeout: float = 300.0) -> str:
    """Run one of Kafka's own command-line tools from the jars; return its stdout.

    Example: ``run_kafka_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
    "127.0.0.1:9092", "--list")``.

    Raises:
        StackError: the tool exited non-zero.
    """
    argv = [find_java(), "-Dlog4j2.level=WARN", "-cp", f"{find_jars_dir()}/*", main_class, *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise StackError(f"{main_class} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def list_offsets(bootstrap_servers: str, topic: str, spec: str) -> dict[int, int]:
    """ListOffsets through Kafka's own tool: offset per partition of ``topic`` for ``spec``.

    ``spec`` is a time in ms or ``-1`` latest, ``-2`` earliest (the log start), ``-3`` max
    timestamp, ``-4`` earliest still on local disk (tiered storage; librdkafka refuses ``-4``).
    """
    out = run_kafka_tool(
        "org.apache.kafka.tools.GetOffsetShell",
        "--bootstrap-server", bootstrap_servers, "--topic", topic, "--time", spec,
    )  # fmt: skip
    offsets: dict[int, int] = {}
    for line in out.split():
        _topic, partition, offset = line.rsplit(":", 2)
        offsets[int(partition)] = int(offset)
    return offsets
