r"""MirrorMaker 2 (dedicated mode) from the primary cluster into the stack's analytics cluster.

``lakeless stack up --analytics`` starts a second, single-node Kafka cluster
(`lakeless.stack.KafkaCluster` named ``analytics``, its files in ``<data-dir>/analytics``) and
one MirrorMaker 2 process (``org.apache.kafka.connect.mirror.MirrorMaker``, from Kafka's
``connect-mirror`` jar) that replicates, one way, the pipelines' topics, the model registry and
the schema registry into it. Its files are in ``<data-dir>/mirror``: ``mm2.properties``,
``log4j2.properties``, ``logs/mirror.log`` and the pid file.

Topic names are kept (``IdentityReplicationPolicy``): ``sensor-clean`` on the primary is
``sensor-clean`` on analytics, so every ``lakeless`` command works on the replica with only the
bootstrap servers changed. The price: a replica cannot be told from a source topic by its name
(the lineage of a model says which cluster it was read from), and the flow must stay one way
(nothing may write to the replicas on analytics; a model trained there is registered on the
primary: ``LAKELESS_REGISTRY__BOOTSTRAP_SERVERS``). MirrorMaker's own topics live on analytics
only (offset syncs included), so the mission-critical cluster gets none of them.

Example:
    >>> print(mirror_topics_regex(["sensor-clean", "lakeless.models"]))
    lakeless\.models|sensor-clean
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Final

from lakeless.config import KafkaSettings
from lakeless.errors import KafkaError, StackError
from lakeless.kafka import end_offsets
from lakeless.stack._kafka import KafkaCluster, find_java
from lakeless.stack._process import Daemon

__all__ = [
    "MAIN_CLASS",
    "REPLICATION_POLICY",
    "MirrorMaker",
    "mirror_topics_regex",
    "mirrored_topics",
    "records",
]

logger = logging.getLogger(__name__)

MAIN_CLASS: Final = "org.apache.kafka.connect.mirror.MirrorMaker"
REPLICATION_POLICY: Final = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
#: Where MirrorMaker 2's heartbeat connector writes on the target (one record per interval).
HEARTBEATS_TOPIC: Final = "heartbeats"
SOURCE: Final = "primary"
TARGET: Final = "analytics"
#: Seconds between MirrorMaker's looks for new topics, groups, checkpoints and heartbeats.
_INTERVAL_S: Final = 5
#: Records up to the brokers' 64 MiB (`lakeless.models` holds inline ONNX models).
_MAX_RECORD: Final = 64 * 1024 * 1024


def mirror_topics_regex(topics: Iterable[str]) -> str:
    """MirrorMaker's ``topics`` value: exactly these topic names, as one Java regex."""
    return "|".join(name.replace(".", "\\.") for name in sorted(set(topics)))


def _properties_value(text: str) -> str:
    # A backslash in a .properties value escapes the next character: double it.
    return text.replace("\\", "\\\\")


def records(settings: KafkaSettings, topics: Sequence[str]) -> dict[str, int | None]:
    """Per topic, its partitions' end offsets summed (``None``: no such topic, or no answer)."""
    out: dict[str, int | None] = {}
    for topic in topics:
        try:
            out[topic] = sum(end_offsets(settings, topic).values())
        except KafkaError as exc:
            logger.debug("%s on %s: %s", topic, settings.bootstrap_servers, exc)
            out[topic] = None
    return out


class MirrorMaker:
    """One MirrorMaker 2 process replicating ``topics`` from ``source`` into ``target``.

    Args:
        data_dir: the stack's data folder; the mirror uses ``<data_dir>/mirror``.
        source: the primary cluster.
        target: the analytics cluster.
        heap: JVM heap of the MirrorMaker process.
    """

    def __init__(
        self, data_dir: Path, source: KafkaCluster, target: KafkaCluster, *, heap: str = "512m"
    ) -> None:
        self.home = data_dir.resolve() / "mirror"
        self.source = source
        self.target = target
        self.heap = heap
        self.daemon = Daemon("mirrormaker", self.home / "mirror.pid", self.home / "stdout.log")

    @property
    def config_file(self) -> Path:
        """``mm2.properties``, rewritten by every `start`."""
        return self.home / "mm2.properties"

    @property
    def log_file(self) -> Path:
        """MirrorMaker's log (through ``log4j2.properties``)."""
        return self.home / "logs" / "mirror.log"

    def pid(self) -> int | None:
        """MirrorMaker's pid when running."""
        return self.daemon.pid()

    def topics(self) -> list[str]:
        """The topics the last `start` mirrors (empty before the first)."""
        try:
            saved = json.loads((self.home / "topics.json").read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [str(topic) for topic in saved]

    def config(self, topics: Sequence[str]) -> str:
        """The ``mm2.properties`` that mirrors ``topics`` (one way, names kept)."""
        flow = f"{SOURCE}->{TARGET}"
        lines = {
            "clusters": f"{SOURCE}, {TARGET}",
            f"{SOURCE}.bootstrap.servers": self.source.bootstrap,
            f"{TARGET}.bootstrap.servers": self.target.bootstrap,
            f"{flow}.enabled": "true",
            f"{TARGET}->{SOURCE}.enabled": "false",
            f"{flow}.topics": _properties_value(mirror_topics_regex(topics)),
            # Names kept: the replica of sensor-clean is sensor-clean (see the module docstring).
            "replication.policy.class": REPLICATION_POLICY,
            # MirrorMaker's bookkeeping stays on analytics: nothing is added to the primary.
            "offset-syncs.topic.location": "target",
            "sync.group.offsets.enabled": "true",
            "sync.topic.configs.enabled": "true",
            "sync.topic.acls.enabled": "false",
            "emit.checkpoints.enabled": "true",
            "emit.heartbeats.enabled": "true",
            "refresh.topics.interval.seconds": str(_INTERVAL_S),
            "refresh.groups.interval.seconds": str(_INTERVAL_S),
            "emit.checkpoints.interval.seconds": str(_INTERVAL_S),
            "sync.group.offsets.interval.seconds": str(_INTERVAL_S),
            "emit.heartbeats.interval.seconds": str(_INTERVAL_S),
            # Every connector is on the classpath with its manifest: no 20 s scan of the jars.
            "plugin.discovery": "service_load",
            # How much a restart may replicate a second time (at-least-once).
            "offset.flush.interval.ms": "5000",
            # Analytics is one node: every topic MirrorMaker creates there has one replica.
            "replication.factor": "1",
            "checkpoints.topic.replication.factor": "1",
            "heartbeats.topic.replication.factor": "1",
            "offset-syncs.topic.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "config.storage.replication.factor": "1",
            f"{TARGET}.producer.max.request.size": str(_MAX_RECORD),
            f"{TARGET}.producer.buffer.memory": str(2 * _MAX_RECORD),
            f"{TARGET}.producer.linger.ms": "5",
            f"{SOURCE}.consumer.max.partition.fetch.bytes": str(_MAX_RECORD),
        }
        if not self.target.tiered_storage:
            # A tiering topic config would make the topic's creation fail on analytics.
            lines["config.properties.exclude"] = _properties_value(
                "remote\\.storage\\.enable,local\\.retention\\..*,"
                "follower\\.replication\\.throttled\\.replicas,"
                "leader\\.replication\\.throttled\\.replicas,"
                "message\\.timestamp\\.difference\\.max\\.ms,"
                "unclean\\.leader\\.election\\.enable,min\\.insync\\.replicas"
            )
        body = "".join(f"{key}={value}\n" for key, value in lines.items())
        return "# Written by `lakeless stack up --analytics` on every start.\n" + body

    def start(self, topics: Sequence[str], timeout: float = 120.0) -> bool:
        """Start MirrorMaker for ``topics`` unless it runs with that very config already.

        Running with another topic list (a pipeline registered since), it is restarted: it
        resumes from the offsets it committed on analytics.

        Returns:
            whether a process was started.

        Raises:
            StackError: Java or the jars are missing, or MirrorMaker died or did not start
                replicating (no heartbeat on analytics) within ``timeout`` seconds.
        """
        config = self.config(topics)
        running = self.pid()
        if running is not None:
            if self.config_file.exists() and self.config_file.read_text() == config:
                logger.info("mirrormaker already running (pid %s)", running)
                return False
            logger.info("mirrored topics changed: restarting mirrormaker (pid %s)", running)
            self.stop()
        for folder in (self.home, self.log_file.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config)
        (self.home / "topics.json").write_text(json.dumps(sorted(set(topics))) + "\n")
        templates = resources.files("lakeless.stack") / "templates"
        log_config = self.home / "log4j2.properties"
        log_config.write_text((templates / "mirror-log4j2.properties").read_text())
        java, jars = find_java(), self.source.jars_dir
        if not any(jars.glob("connect-mirror-[0-9]*.jar")):
            raise StackError(
                f"MirrorMaker 2 (connect-mirror) is missing from {jars}: run `make setup`"
            )
        target = self.target.client_settings()
        beats = records(target, [HEARTBEATS_TOPIC])[HEARTBEATS_TOPIC] or 0
        argv = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp",
            f"{jars}/*",
            MAIN_CLASS,
            str(self.config_file),  # before --clusters, which takes every name after it
            "--clusters",
            TARGET,
        ]
        started = time.monotonic()
        process = self.daemon.start(argv)
        while (records(target, [HEARTBEATS_TOPIC])[HEARTBEATS_TOPIC] or 0) <= beats:
            if process.poll() is not None:
                self.daemon.pid_file.unlink(missing_ok=True)
                raise StackError(
                    f"MirrorMaker 2 exited with code {process.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if time.monotonic() - started > timeout:
                self.stop()
                raise StackError(
                    f"MirrorMaker 2 sent no heartbeat to {self.target.bootstrap} within "
                    f"{timeout:.0f}s; last lines of {self.log_file}:\n{self.log_tail()}"
                )
            time.sleep(0.5)
        logger.info(
            "mirrormaker %s -> %s up in %.1fs (pid %s), %d topics",
            self.source.bootstrap,
            self.target.bootstrap,
            time.monotonic() - started,
            process.pid,
            len(topics),
        )
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop MirrorMaker; returns whether it was running."""
        return self.daemon.stop(timeout)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the stdout file and the log."""
        log = Daemon("mirrormaker", self.daemon.pid_file, self.log_file)
        return self.daemon.log_tail(5) + "\n" + log.log_tail(lines)

    def status(self) -> dict[str, Any]:
        """The ``mirror`` entry of ``lakeless stack status --json``.

        ``topics`` maps each mirrored topic to its records (summed end offsets) on either side;
        ``None`` where the topic does not exist (yet). The difference is the replication lag
        only approximately: the replica may hold duplicates (at-least-once), and transaction
        markers take offsets on the primary that are not replicated.
        """
        pid = self.pid()
        topics = self.topics()
        source, target = (
            records(cluster.client_settings(), topics)
            if topics and cluster.pid() is not None
            else {}
            for cluster in (self.source, self.target)
        )
        return {
            "running": pid is not None,
            "pid": pid,
            "source": self.source.bootstrap,
            "target": self.target.bootstrap,
            "replication_policy": "identity",
            "topics": {
                topic: {SOURCE: source.get(topic), TARGET: target.get(topic)} for topic in topics
            },
            "config": str(self.config_file),
            "log": str(self.log_file),
        }


def mirrored_topics(topic_sets: Iterable[Mapping[str, str]], shared: Iterable[str]) -> list[str]:
    """Every pipeline's data topics (``raw``, ``clean``, ... of each set) plus ``shared``."""
    names = {name for topics in topic_sets for name in topics.values()}
    return sorted(names | set(shared))
