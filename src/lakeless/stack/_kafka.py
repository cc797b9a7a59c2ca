"""A single-node Apache Kafka broker+controller (KRaft) run from Maven Central jars."""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from importlib import resources
from pathlib import Path

from lakeless.config import KafkaSettings
from lakeless.errors import KafkaError, StackError
from lakeless.kafka import wait_for_broker
from lakeless.stack._process import Daemon, port_answers, port_is_free

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


class KafkaBroker:
    """One KRaft node (broker and controller) with tiered storage to a local directory.

    Args:
        data_dir: the stack's data folder; the broker uses ``<data_dir>/kafka``.
        kafka_port: client listener port.
        controller_port: controller listener port.
        tiered_storage: enable KIP-405 tiered storage (LocalTieredStorage).
        jars_dir: Kafka's jars (default: `find_jars_dir`).
        heap: JVM heap, e.g. ``"1g"``.
    """

    def __init__(
        self,
        data_dir: Path,
        kafka_port: int = 9092,
        controller_port: int = 9093,
        *,
        tiered_storage: bool = True,
        jars_dir: Path | None = None,
        heap: str = "1g",
        partitions: int = 6,
    ) -> None:
        self.home = data_dir.resolve() / "kafka"
        self.kafka_port = kafka_port
        self.controller_port = controller_port
        self.tiered_storage = tiered_storage
        self._jars_dir = jars_dir
        self.heap = heap
        self.partitions = partitions
        self.daemon = Daemon("kafka", self.home / "kafka.pid", self.home / "logs" / "stdout.log")

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the client listener."""
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def log_dir(self) -> Path:
        """Where the broker keeps its partitions (``log.dirs``)."""
        return self.home / "data"

    @property
    def remote_dir(self) -> Path:
        """Root of the local remote tier (``rsm.config.dir``)."""
        return self.home / "remote"

    @property
    def jars_dir(self) -> Path:
        """Kafka's jars."""
        return find_jars_dir(self._jars_dir)

    def pid(self) -> int | None:
        """The broker's pid when running."""
        return self.daemon.pid()

    def start(self, timeout: float = 90.0) -> None:
        """Write the config, format storage on first use, start, and wait for metadata.

        Raises:
            StackError: a port is taken, Java or the jars are missing, or the broker died.
        """
        if self.pid() is not None:
            logger.info("kafka already running (pid %s) on %s", self.pid(), self.bootstrap)
            return
        for port, what in ((self.kafka_port, "Kafka"), (self.controller_port, "controller")):
            if not port_is_free(port):
                raise StackError(f"port {port} for the {what} listener is taken by another process")
        java, jars = find_java(), self.jars_dir
        self._write_config()
        if not (self.log_dir / "meta.properties").exists():
            self._format(java, jars)
        argv = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
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
        started = time.monotonic()
        process = self.daemon.start(argv)
        settings = KafkaSettings(bootstrap_servers=self.bootstrap)
        while True:
            if process.poll() is not None:
                self.daemon.pid_file.unlink(missing_ok=True)
                raise StackError(
                    f"Kafka exited with code {process.returncode} while starting; last log lines:\n"
                    + self._server_log_tail()
                )
            if not port_answers(self.kafka_port):  # no client, no connection-refused log spam
                time.sleep(0.1)
            else:
                try:
                    wait_for_broker(settings, timeout=2.0)
                    break
                except KafkaError:
                    pass
            if time.monotonic() - started > timeout:
                self.daemon.stop()
                raise StackError(
                    f"Kafka did not answer on {self.bootstrap} within {timeout:.0f}s; "
                    f"last log lines:\n{self._server_log_tail()}"
                )
        logger.info(
            "kafka %s up on %s in %.1fs",
            kafka_version(jars),
            self.bootstrap,
            time.monotonic() - started,
        )

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the broker cleanly (SIGTERM; it flushes and closes its logs)."""
        return self.daemon.stop(timeout)

    def _server_log_tail(self) -> str:
        server_log = Daemon("kafka", self.daemon.pid_file, self.home / "logs" / "server.log")
        return self.daemon.log_tail(10) + "\n" + server_log.log_tail(15)

    def _write_config(self) -> None:
        for folder in (self.log_dir, self.remote_dir, self.home / "logs"):
            folder.mkdir(parents=True, exist_ok=True)
        templates = resources.files("lakeless.stack") / "templates"
        server = (
            (templates / "server.properties")
            .read_text()
            .format(
                kafka_port=self.kafka_port,
                controller_port=self.controller_port,
                log_dir=self.log_dir,
                remote_dir=self.remote_dir,
                tiered=str(self.tiered_storage).lower(),
                partitions=self.partitions,
            )
        )
        (self.home / "server.properties").write_text(server)
        (self.home / "log4j2.properties").write_text((templates / "log4j2.properties").read_text())

    def _format(self, java: str, jars: Path) -> None:
        cluster_id = _cluster_id()
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
            "--standalone",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
        logger.info("formatted Kafka storage in %s (cluster %s)", self.log_dir, cluster_id)


def _cluster_id() -> str:
    # Kafka's format: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


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
