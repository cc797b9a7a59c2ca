"""A three-broker stack (`lakeless stack up --brokers 3`) under broker failures.

One cluster for the module, started and stopped with the CLI on free ports. The first test
checks the cluster itself (status, replication, a node killed with ``kill -9`` coming back with
its data, tiered storage read through a new leader); the second runs the whole pipeline as
subprocesses (simulate over MQTT -> bridge -> preprocess -> score exactly-once -> twin) while
brokers die: first the one leading most partitions, then two of three at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.examples import car_fleet
from lakeless.fleet import Fleet, fleet_events
from lakeless.kafka import make_admin, make_producer
from lakeless.lifecycle import RunLimits
from lakeless.model import OnnxScorer
from lakeless.registry import Registry, RegistrySettings
from lakeless.schema.outputs import OutputCodec
from lakeless.stack import free_port, free_ports, list_offsets
from lakeless.testing.events import decode_clean
from lakeless.testing.kafka import committed_offsets, end_offsets, produce_records, read_topic
from lakeless.testing.models import FEATURES, make_test_onnx
from lakeless.testing.waiting import wait_for
from lakeless.twin import TwinSettings, TwinStage, open_store

BROKERS = 3
MODEL = "car-ae"

OUTPUTS = OutputCodec(car_fleet())


# ---- the cluster -------------------------------------------------------------------------------


def lakeless(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> str:
    """Run ``lakeless ARGS``; return stdout; fail the test with its stderr on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", "lakeless", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, f"lakeless {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


@dataclass
class Cluster:
    data_dir: Path
    bootstrap: str
    mqtt_url: str
    kafka: KafkaSettings

    def status(self) -> dict[str, Any]:
        out = lakeless("stack", "status", "--data-dir", str(self.data_dir), "--json")
        status: dict[str, Any] = json.loads(out)
        return status

    def pids(self) -> dict[int, int | None]:
        return {b["id"]: b["pid"] for b in self.status()["kafka"]["brokers"]}

    def up(self) -> float:
        """``lakeless stack up``; returns the seconds it took."""
        started = time.monotonic()
        lakeless("stack", "up", "--data-dir", str(self.data_dir))
        return time.monotonic() - started

    def kill(self, *node_ids: int) -> float:
        """``kill -9`` the nodes; returns the monotonic time of the kill."""
        pids = self.pids()
        now = time.monotonic()
        for node_id in node_ids:
            pid = pids[node_id]
            assert pid is not None, f"node {node_id} is not running"
            os.kill(pid, signal.SIGKILL)
        for node_id in node_ids:
            wait_for(lambda n=node_id: not _alive(pids[n]), 10, f"node {node_id} to die")
        return now


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("cluster")
    kafka_port, controller_port = free_ports(BROKERS), free_ports(BROKERS)
    while set(range(controller_port, controller_port + BROKERS)) & set(
        range(kafka_port, kafka_port + BROKERS)
    ):
        controller_port = free_ports(BROKERS)
    mqtt_port = free_port()
    lakeless(
        "stack", "up", "--brokers", str(BROKERS), "--data-dir", str(data_dir),
        "--kafka-port", str(kafka_port), "--controller-port", str(controller_port),
        "--mqtt-port", str(mqtt_port),
        env={"LAKELESS_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    bootstrap = ",".join(f"127.0.0.1:{kafka_port + i}" for i in range(BROKERS))
    try:
        yield Cluster(
            data_dir,
            bootstrap,
            f"mqtt://127.0.0.1:{mqtt_port}",
            KafkaSettings(bootstrap_servers=bootstrap),
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "lakeless", "stack", "down", "--data-dir", str(data_dir)],
            capture_output=True,
            timeout=120,
        )


def leaders(admin: AdminClient, topics: list[str] | None = None) -> Counter[int]:
    """Broker id -> partitions it leads (of ``topics``, or of every topic)."""
    metadata = admin.list_topics(timeout=10)
    counts: Counter[int] = Counter()
    for name, topic in metadata.topics.items():
        if topics is None or name in topics:
            counts.update(p.leader for p in topic.partitions.values() if p.leader >= 0)
    return counts


def wait_in_sync(admin: AdminClient, topics: list[str], timeout: float = 90) -> None:
    """Until every partition of ``topics`` has all its replicas in sync again."""

    def in_sync() -> bool:
        metadata = admin.list_topics(timeout=10)
        return all(
            len(p.isrs) == len(p.replicas)
            for name in topics
            for p in metadata.topics[name].partitions.values()
        )

    wait_for(in_sync, timeout, f"every replica of {topics} in sync")


def create_topic(kafka: KafkaSettings, name: str, partitions: int, **kwargs: Any) -> None:
    admin = make_admin(kafka)
    futures = admin.create_topics(
        [NewTopic(name, partitions, **kwargs)], operation_timeout=30, request_timeout=30
    )
    futures[name].result()
    wait_for(
        lambda: all(
            p.leader >= 0
            for p in admin.list_topics(name, timeout=10).topics[name].partitions.values()
        ),
        30,
        f"leaders of {name}",
    )


# ---- test: the cluster itself ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.mqtt
def test_three_brokers_replicate_and_a_killed_node_comes_back(cluster: Cluster) -> None:
    status = cluster.status()["kafka"]
    assert status["running"] and status["bootstrap"] == cluster.bootstrap
    assert [b["id"] for b in status["brokers"]] == [1, 2, 3]
    assert all(b["running"] and b["pid"] for b in status["brokers"])
    assert status["tiered_storage"] is True and status["security_protocol"] == "PLAINTEXT"

    # Pipeline topics and the registry: 3 replicas, 2 in sync to accept a write.
    lakeless("topics", "create", "--bootstrap", cluster.bootstrap)
    admin = make_admin(cluster.kafka)
    topics = TopicSettings()
    names = [topics.raw, topics.clean, topics.dlq, topics.models, topics.anomalies, topics.scores]
    metadata = admin.list_topics(timeout=10)
    for name in names:
        assert {len(p.replicas) for p in metadata.topics[name].partitions.values()} == {3}, name
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result()["min.insync.replicas"].value == "2", resource
    # ... and the internal topics, in the broker config.
    broker = ConfigResource(ResourceType.BROKER, "1")
    config = admin.describe_configs([broker])[broker].result()
    for key, value in {
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "share.coordinator.state.topic.replication.factor": "3",
        "share.coordinator.state.topic.min.isr": "2",
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
    }.items():
        assert config[key].value == value, key

    # Tiered storage on three nodes: segments leave the leader's disk, and a new leader (the
    # old one killed) serves them from the shared remote tier.
    tiered = f"tiered-{uuid.uuid4().hex[:6]}"
    create_topic(
        cluster.kafka, tiered, 1, replication_factor=3,
        config={
            "remote.storage.enable": "true", "retention.ms": "-1", "local.retention.ms": "1000",
            "segment.bytes": str(1024 * 1024), "file.delete.delay.ms": "1000",
            "min.insync.replicas": "2",
        },
    )  # fmt: skip
    records = [(b"car-%d" % (i % 50), os.urandom(1000)) for i in range(5000)]
    produce_records(cluster.kafka, tiered, records)

    wait_for(
        lambda: list_offsets(cluster.bootstrap, tiered, "-4")[0] > 0,
        120,
        "a segment of the tiered topic to leave the disk",
    )

    leader = admin.list_topics(tiered, timeout=10).topics[tiered].partitions[0].leader
    before = cluster.pids()
    cluster.kill(leader)
    down = cluster.status()["kafka"]
    assert down["running"] is False
    assert {b["id"]: b["running"] for b in down["brokers"]} == {i: i != leader for i in (1, 2, 3)}
    # Two of three are enough: writes go on (min ISR 2), and the tiered data is all there.
    more = [(b"late-%d" % i, b"while node %d was down" % leader) for i in range(200)]
    produce_records(cluster.kafka, tiered, more)
    got = read_topic(cluster.kafka, tiered, expected=len(records) + len(more), timeout=120)
    assert [(m.key(), m.value()) for m in got] == records + more

    seconds = cluster.up()  # idempotent: starts the dead node, leaves the others alone
    after = cluster.pids()
    assert after[leader] is not None and after[leader] != before[leader]
    assert {i: after[i] for i in after if i != leader} == {
        i: before[i] for i in before if i != leader
    }
    wait_in_sync(admin, [tiered])
    print(f"\nnode {leader} killed with -9 and back with `stack up` in {seconds:.1f}s")
    # The restarted node has the data too: read with it as the only bootstrap server.
    port = {b["id"]: b["port"] for b in cluster.status()["kafka"]["brokers"]}[leader]
    alone = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")
    assert len(read_topic(alone, tiered, expected=len(records) + len(more), timeout=120)) == len(
        records
    ) + len(more)
    assert cluster.up() < 20  # nothing to start: returns at once


# ---- test: failover with the pipeline running --------------------------------------------------


class Probe:
    """Writes a record every ``interval`` s (``acks=all``) to one partition; times the acks.

    Each write's send and acknowledgement times are kept, so the time from a kill to the first
    acknowledged write again, and whether any write was acknowledged while too few brokers
    were up, can be read afterwards.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, interval: float = 0.05) -> None:
        self.topic = topic
        self.interval = interval
        # Writes wait out an outage instead of failing (librdkafka retries until the timeout).
        self.producer = make_producer(kafka, linger_ms=0, message_timeout_ms=600_000)
        self.acks: list[tuple[float, float]] = []  # (sent, acknowledged), monotonic seconds
        self.errors: list[str] = []
        self.pending: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        wait_for(lambda: self.acks, 30, f"a first acknowledged write to {self.topic}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            sent = time.monotonic()
            self.pending[n] = sent
            self.producer.produce(
                self.topic, b"%d" % n, partition=0, on_delivery=self._report(n, sent)
            )
            n += 1
            self.producer.poll(self.interval)
        self.producer.flush(5)

    def _report(self, n: int, sent: float) -> Callable[[Any, Message], None]:
        def report(error: Any, _message: Message) -> None:
            self.pending.pop(n, None)
            if error is not None:
                self.errors.append(str(error))
            else:
                self.acks.append((sent, time.monotonic()))

        return report

    def first_ack_after(self, t: float) -> float | None:
        """When the first write sent at or after ``t`` was acknowledged."""
        return min((acked for sent, acked in list(self.acks) if sent >= t), default=None)

    def acked_between(self, t0: float, t1: float) -> int:
        """Writes sent at or after ``t0`` and acknowledged before ``t1``."""
        return sum(1 for sent, acked in list(self.acks) if sent >= t0 and acked < t1)

    def oldest_pending(self) -> float:
        """Age in seconds of the oldest unacknowledged write (0: none)."""
        pending = list(self.pending.values())
        return time.monotonic() - min(pending) if pending else 0.0


def probe_topic(cluster: Cluster, leader: int) -> str:
    """A fresh one-partition topic (3 replicas, min ISR 2) whose leader is ``leader``."""
    name = f"probe-{leader}-{uuid.uuid4().hex[:6]}"
    others = [i for i in (1, 2, 3) if i != leader]
    create_topic(
        cluster.kafka, name, 1, replica_assignment=[[leader, *others]],
        config={"min.insync.replicas": "2"},
    )  # fmt: skip
    return name


def healthy_model(cars: int) -> tuple[bytes, float]:
    """A z-score ONNX model fitted on healthy fleet data, and a threshold above its scores."""
    items = [e for e in fleet_events(cars=cars, seed=99, count=4000) if e.failure is None]
    data = np.array([[getattr(e, f) for f in FEATURES] for e in items], np.float64)
    mean, std = data.mean(axis=0), data.std(axis=0) + 1e-3
    onnx = make_test_onnx(mean=mean.tolist(), scale=(1 / std).tolist())
    scores, _ = OnnxScorer(onnx, len(FEATURES)).score(data)
    return onnx, float(scores.max()) * 1.5


@dataclass
class Stage:
    name: str
    process: subprocess.Popen[bytes]
    log: Path  # stderr: the log lines
    out: Path  # stdout

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@dataclass
class Pipeline:
    """The stages as subprocesses, each with its log file."""

    env: dict[str, str]
    logs: Path
    stages: dict[str, Stage] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> Stage:
        log, out = self.logs / f"{name}.log", self.logs / f"{name}.out"
        with log.open("wb") as err_file, out.open("wb") as out_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "lakeless", *args],
                # A stage stuck in a C call dumps its threads' stacks on SIGABRT (see `stop`).
                env={**os.environ, "COLUMNS": "200", "PYTHONFAULTHANDLER": "1", **self.env},
                stdout=out_file,
                stderr=err_file,
            )
        self.stages[name] = stage = Stage(name, process, log, out)
        return stage

    def wait_log(self, name: str, text: str, timeout: float = 60) -> None:
        stage = self.stages[name]

        def logged() -> bool:
            assert stage.process.poll() is None, f"{name} exited:\n{stage.tail()}"
            return text in stage.log.read_text(errors="replace")

        wait_for(logged, timeout, f"{name} to log {text!r}")

    def tails(self) -> str:
        """Every stage's last log lines (what a stuck pipeline was doing)."""
        return "\n".join(f"--- {s.name}:\n{s.tail()}" for s in self.stages.values())

    def check_alive(self, *finished: str) -> None:
        """Every stage (but those ``finished`` on purpose) still runs, never restarted."""
        for stage in self.stages.values():
            if stage.name in finished:
                continue
            code = stage.process.poll()
            assert code is None, f"{stage.name} exited ({code}):\n{stage.tail()}"

    def stop(self) -> dict[str, int]:
        for stage in self.stages.values():
            if stage.process.poll() is None:
                stage.process.send_signal(signal.SIGTERM)
        codes = {}
        for stage in self.stages.values():
            try:
                codes[stage.name] = stage.process.wait(60)
            except subprocess.TimeoutExpired:
                stage.process.send_signal(signal.SIGABRT)  # stacks into its log, then it dies
                try:
                    codes[stage.name] = stage.process.wait(10)
                except subprocess.TimeoutExpired:
                    stage.process.kill()
                    codes[stage.name] = stage.process.wait(10)
        return codes


def clean_keys(kafka: KafkaSettings, topic: str, expected: int) -> Counter[tuple[str, int]]:
    messages = read_topic(kafka, topic, expected=expected, timeout=120)
    if not messages:
        return Counter()
    batch = decode_clean([m.value() for m in messages])
    return Counter(zip(batch.key, batch.sequence.tolist(), strict=True))


def record_ends(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """Partition -> the offset after its last record (a commit marker may follow it)."""
    ends: dict[int, int] = {}
    for message in read_topic(kafka, topic, timeout=60):
        ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)
    return ends


def consumed_all(kafka: KafkaSettings, group: str, ends: dict[str, dict[int, int]]) -> bool:
    """Whether ``group`` committed past every record of the topics in ``ends``."""
    for topic, last in ends.items():
        committed = committed_offsets(kafka, group, topic)
        if any(committed.get(p, -1) < end for p, end in last.items()):
            return False
    return True


@pytest.mark.slow
@pytest.mark.mqtt
def test_failover_with_the_pipeline_running(cluster: Cluster, tmp_path: Path) -> None:
    """Kill -9 the busiest broker, then two of three, while the whole pipeline runs."""
    run = uuid.uuid4().hex[:6]
    topics = TopicSettings(**{f: f"fo-{run}-{f}" for f in ("raw", "clean", "dlq", "models",
                                                          "anomalies", "scores")})  # fmt: skip
    env = {
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": cluster.bootstrap,
        "LAKELESS_MQTT__URL": cluster.mqtt_url,
        "LAKELESS_DATA_DIR": str(tmp_path),
        "LAKELESS_LOG_LEVEL": "INFO",
        **{f"LAKELESS_TOPICS__{f.upper()}": getattr(topics, f) for f in
           ("raw", "clean", "dlq", "models", "anomalies", "scores")},
    }  # fmt: skip
    lakeless("topics", "create", env=env)
    settings = Settings(kafka=cluster.kafka, topics=topics)
    admin = make_admin(cluster.kafka)
    pipeline_topics = [getattr(topics, f) for f in ("raw", "clean", "anomalies", "scores")]
    wait_in_sync(admin, pipeline_topics)  # after the first test's restart, too

    cars, interval = 40, 0.4  # 100 events/s over MQTT
    onnx, threshold = healthy_model(cars)
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        registry.register(MODEL, onnx, threshold=threshold, features=FEATURES, stage="live")

    twin_db = f"sqlite:///{tmp_path / 'twin.sqlite'}"
    pipe = Pipeline(env, tmp_path)
    pipe.start("twin", "twin", "--url", twin_db, "--group-id", f"twin-{run}")
    pipe.start(
        "score", "score", "--model", MODEL, "--group-id", f"score-{run}",
        "--guarantee", "exactly-once", "--all-scores",
    )  # fmt: skip
    pipe.start("preprocess", "preprocess", "--group-id", f"preprocess-{run}")
    pipe.start("bridge", "bridge", "--client-id", f"bridge-{run}")
    pipe.wait_log("bridge", "subscribed to")  # MQTT drops what is published before that
    seed = 5
    simulate = pipe.start(
        "simulate", "simulate", "--cars", str(cars), "--interval", str(interval),
        "--failure-rate", "30", "--ramp", "5", "--seed", str(seed), "--json",
    )  # fmt: skip
    stages_pids = {name: s.process.pid for name, s in pipe.stages.items()}
    figures: dict[str, float] = {}
    try:
        # The pipeline flows end to end before anything is killed.
        wait_for(lambda: sum(end_offsets(cluster.kafka, topics.scores).values()) > 200, 120,
                 "scores to flow")  # fmt: skip

        # 1. kill -9 the broker that leads most partitions; writes go on with two.
        victim = leaders(admin).most_common(1)[0][0]
        with Probe(cluster.kafka, probe_topic(cluster, victim)) as probe:
            clean_before = sum(end_offsets(cluster.kafka, topics.clean).values())
            killed = cluster.kill(victim)
            wait_for(lambda: probe.first_ack_after(killed), 60, "a write after the kill")
            first = probe.first_ack_after(killed)
            assert first is not None
            figures["one_down_recovery_s"] = first - killed
            wait_for(
                lambda: sum(end_offsets(cluster.kafka, topics.clean).values()) > clean_before + 500,
                240, "the pipeline to go on with a broker down", pipe.tails,
            )  # fmt: skip
            pipe.check_alive()
            figures["one_down_restart_s"] = cluster.up()
        wait_in_sync(admin, pipeline_topics)

        # 2. kill two of three: writes stop (min ISR 2) until they are back.
        metadata = admin.list_topics(timeout=10)
        two = [b for b, _ in leaders(admin).most_common()][:2]
        if len(two) < 2:
            two += [b for b in metadata.brokers if b not in two][: 2 - len(two)]
        with Probe(cluster.kafka, probe_topic(cluster, two[0])) as probe:
            killed = cluster.kill(*two)
            wait_for(lambda: probe.oldest_pending() > 3, 30, "writes to stall")
            restart = time.monotonic()
            assert probe.acked_between(killed, restart) == 0, (
                "a write was acknowledged by one broker"
            )
            pipe.check_alive()
            figures["two_down_restart_s"] = cluster.up()
            wait_for(lambda: probe.first_ack_after(killed), 120, "a write after the restart")
            first = probe.first_ack_after(killed)
            assert first is not None
            figures["two_down_outage_s"] = first - killed
            figures["two_down_recovery_after_up_s"] = first - restart
            assert not probe.errors, probe.errors[:3]
        clean_now = sum(end_offsets(cluster.kafka, topics.clean).values())
        wait_for(
            lambda: sum(end_offsets(cluster.kafka, topics.clean).values()) > clean_now + 500,
            240, "the pipeline to go on after the restart", pipe.tails,
        )  # fmt: skip
        pipe.check_alive()
        simulate.process.send_signal(signal.SIGTERM)
        assert simulate.process.wait(60) == 0, simulate.tail()
        stats = json.loads(simulate.out.read_text())
        steps = stats["events"] // cars  # every car reports once per step sent
        assert stats["delivered"] == stats["events"] == cars * steps, stats
        expected = Counter(
            (car, seq) for car in Fleet(cars, seed=seed).car_ids for seq in range(steps)
        )

        # Nothing lost: every (car_id, seq) sent reaches sensor-clean.
        def clean_complete() -> bool:
            return sum(end_offsets(cluster.kafka, topics.clean).values()) >= stats["events"]

        wait_for(clean_complete, 180, "every event in sensor-clean")
        clean = clean_keys(cluster.kafka, topics.clean, stats["events"])
        assert set(clean) == set(expected), "events lost between MQTT and sensor-clean"
        duplicated_clean = sum(clean.values()) - len(clean)
        # Nothing duplicated in read_committed output: every clean record scored exactly once.
        wait_for(
            lambda: sum(end_offsets(cluster.kafka, topics.scores).values()) >= sum(clean.values()),
            180, "every clean record scored",
        )  # fmt: skip
        scores = Counter(
            (s.key, s.sequence)
            for s in (OUTPUTS.decode_score(m.value()) for m in read_topic(
                cluster.kafka, topics.scores, expected=sum(clean.values()), timeout=120))
        )  # fmt: skip
        assert scores == clean, "scores differ from sensor-clean (lost or duplicated)"
        # The twin caught up; its state equals a replay of the same topics.
        ends = {t: record_ends(cluster.kafka, t) for t in (topics.clean, topics.anomalies)}
        wait_for(lambda: consumed_all(cluster.kafka, f"twin-{run}", ends), 120,
                 "the twin to catch up")  # fmt: skip
        pipe.check_alive("simulate")
        assert {name: s.process.pid for name, s in pipe.stages.items()} == stages_pids
    finally:
        codes = pipe.stop()
    assert all(code == 0 for name, code in codes.items()), {
        name: pipe.stages[name].tail() for name, code in codes.items() if code
    }
    replay_db = f"sqlite:///{tmp_path / 'replay.sqlite'}"
    replay_settings = settings.model_copy(
        update={"twin": TwinSettings(url=replay_db, group_id=f"replay-{run}")}
    )
    TwinStage(replay_settings).run(RunLimits(until_idle=3.0, timeout=120))
    with open_store(twin_db, car_fleet()) as live, open_store(replay_db, car_fleet()) as replay:
        live_state = live.snapshot()
        assert live_state == replay.snapshot()
    anomalies = sum(end_offsets(cluster.kafka, topics.anomalies).values())
    print(
        f"\nfailover: {stats['events']} events sent over MQTT, lost 0, duplicated in sensor-clean "
        f"{duplicated_clean}, duplicated in scores 0 ({sum(scores.values())} scored, "
        f"{anomalies} anomalies); one broker killed: first acknowledged write after "
        f"{figures['one_down_recovery_s']:.1f}s (back via `stack up` in "
        f"{figures['one_down_restart_s']:.1f}s); two killed: writes stopped, first acknowledged "
        f"write {figures['two_down_outage_s']:.1f}s after the kill, "
        f"{figures['two_down_recovery_after_up_s']:.1f}s after `stack up` began "
        f"(which took {figures['two_down_restart_s']:.1f}s); no stage restarted"
    )
