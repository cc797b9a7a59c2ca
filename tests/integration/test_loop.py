"""The one batch loop on a real broker: rebalances mid-batch, lost partitions, fencing, retries.

The step copies every input record to an output topic (value and key unchanged), so "nothing
lost, nothing duplicated" is a comparison of two sets of values.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException, Message

from lakeless.config import KafkaSettings, Settings
from lakeless.errors import KafkaError
from lakeless.kafka import BaseStep, BatchLoop, BatchResult, LoopConfig
from lakeless.lifecycle import RunLimits
from lakeless.testing.kafka import committed_offsets, produce_records, read_topic
from lakeless.testing.waiting import wait_for

pytestmark = pytest.mark.slow


class Copy(BaseStep):
    """Copies records to ``target``; ``stall`` makes one batch block first (a stuck member)."""

    name = "copy"

    def __init__(self, target: str, stall: float = 0.0) -> None:
        self.target = target
        self.stall = stall
        self.batches = 0

    def process(self, messages: list[Message]) -> BatchResult:
        if self.stall and self.batches == 1:
            time.sleep(self.stall)
        self.batches += 1
        return BatchResult([(self.target, m.value(), m.key(), 0, None) for m in messages])


def config(group: str, topic: str, **extra: Any) -> LoopConfig:
    return LoopConfig(group_id=group, topics=(topic,), batch_size=200, log_interval=0, **extra)


def values(kafka: KafkaSettings, topic: str, expected: int) -> list[bytes]:
    # librdkafka's consumers read committed records only (isolation.level=read_committed).
    records = read_topic(kafka, topic, expected=expected, timeout=60)
    return [value for r in records if (value := r.value()) is not None]


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> tuple[str, str]:
    return new_topic(partitions=6), new_topic(partitions=3)


@pytest.fixture
def settings(kafka: KafkaSettings) -> Settings:
    return Settings(kafka=kafka)


def feed(kafka: KafkaSettings, topic: str, n: int, start: int = 0) -> list[bytes]:
    sent = [f"r{i:06d}".encode() for i in range(start, start + n)]
    produce_records(kafka, topic, [(f"k{i % 37}".encode(), v) for i, v in enumerate(sent)])
    return sent


def run_in_thread(loop: BatchLoop, limits: RunLimits) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(loop.run(limits))
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


@pytest.fixture
def loop_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="lakeless.kafka._loop")
    yield caplog


def wait_until_both_assigned(loop_logs: pytest.LogCaptureFixture) -> None:
    """The group's rebalance has given partitions to both members (the first one's start + two).

    Records fed only after this reach both; fed before, the first member may read them all
    while the second is still joining (seen in CI: the second then had no batch at all).
    """

    def assignments() -> int:
        return sum(r.message.startswith("assigned ") for r in loop_logs.records)

    wait_for(
        lambda: assignments() >= 3,
        60,
        "the second member's assignment",
        lambda: "\n".join(r.message for r in loop_logs.records[-20:]),
    )


def test_a_member_joining_mid_batch_loses_and_duplicates_nothing_under_exactly_once(
    settings: Settings, topics: tuple[str, str], loop_logs: pytest.LogCaptureFixture
) -> None:
    source, target = topics
    group = f"loop-{uuid.uuid4().hex[:8]}"
    # Slow acknowledgements (linger) and an eager keep-alive: the loop polls while a batch is
    # in flight, which is where a rebalance lands mid-batch.
    slow = {"keepalive_after": 0.01, "linger_ms": 250, "guarantee": "exactly-once"}
    first = BatchLoop(
        settings,
        config(group, source, transactional_id=f"{group}-a", **slow),
        Copy(target),
    )
    sent = feed(settings.kafka, source, 1500)
    thread_a, outcome_a = run_in_thread(first, RunLimits(until_idle=5, timeout=120))
    wait_for(lambda: first.stats.received >= 400, 60, "the first member got going", interval=0.05)
    second = BatchLoop(
        settings,
        config(group, source, transactional_id=f"{group}-b", **slow),
        Copy(target),
    )
    thread_b, outcome_b = run_in_thread(second, RunLimits(until_idle=5, timeout=120))
    wait_until_both_assigned(loop_logs)
    sent += feed(settings.kafka, source, 1000, start=1500)
    thread_a.join(150)
    thread_b.join(150)
    assert not isinstance(outcome_a[0], BaseException), outcome_a
    assert not isinstance(outcome_b[0], BaseException), outcome_b
    got = values(settings.kafka, target, len(sent))
    assert sorted(got) == sorted(sent)  # every input once: nothing lost, nothing twice
    assert first.stats.received + second.stats.received >= len(sent)
    assert any("revoked mid-batch" in r.message for r in loop_logs.records) or (
        first.stats.batches and second.stats.batches
    )


def test_pipelined_batches_commit_in_order_and_finish_before_a_rebalance(
    settings: Settings, topics: tuple[str, str], loop_logs: pytest.LogCaptureFixture
) -> None:
    """``pipeline_depth`` 4: batches await acks while the next is read; a revoke finishes them."""
    source, target = topics
    group = f"loop-{uuid.uuid4().hex[:8]}"
    slow = {"keepalive_after": 0.01, "linger_ms": 100, "pipeline_depth": 4}
    first = BatchLoop(settings, config(group, source, **slow), Copy(target))
    sent = feed(settings.kafka, source, 1500)
    thread_a, outcome_a = run_in_thread(first, RunLimits(until_idle=5, timeout=120))
    wait_for(lambda: first.stats.received >= 400, 60, "the first member got going", interval=0.05)
    second = BatchLoop(settings, config(group, source, **slow), Copy(target))
    thread_b, outcome_b = run_in_thread(second, RunLimits(until_idle=5, timeout=120))
    wait_until_both_assigned(loop_logs)
    sent += feed(settings.kafka, source, 1000, start=1500)
    thread_a.join(150)
    thread_b.join(150)
    assert not isinstance(outcome_a[0], BaseException), outcome_a
    assert not isinstance(outcome_b[0], BaseException), outcome_b
    got = values(settings.kafka, target, len(sent))
    assert set(got) == set(sent)  # nothing lost
    # Pending batches were committed before the partitions moved: nothing was done twice.
    failures = first.stats.commit_failures + second.stats.commit_failures
    assert len(got) == len(sent), (len(got) - len(sent), failures)
    assert first.stats.received + second.stats.received == len(sent)
    committed = committed_offsets(settings.kafka, group, source)
    assert sum(max(0, o) for o in committed.values()) == len(sent)  # the last ones synchronous


def test_a_pipelined_run_never_reads_past_its_count(
    settings: Settings, topics: tuple[str, str]
) -> None:
    source, target = topics
    group = f"loop-{uuid.uuid4().hex[:8]}"
    sent = feed(settings.kafka, source, 1000)
    loop = BatchLoop(settings, config(group, source, pipeline_depth=4), Copy(target))
    stats = loop.run(RunLimits(count=450, timeout=60))
    committed = committed_offsets(settings.kafka, group, source)
    assert stats.received == 450 and sum(max(0, o) for o in committed.values()) == 450
    rest = BatchLoop(settings, config(group, source, pipeline_depth=4), Copy(target)).run(
        RunLimits(count=550, timeout=60)
    )
    assert rest.received == 550
    assert sorted(values(settings.kafka, target, len(sent))) == sorted(sent)


def test_lost_partitions_are_not_committed_and_their_new_owner_redoes_them(
    settings: Settings, topics: tuple[str, str], loop_logs: pytest.LogCaptureFixture
) -> None:
    source, target = topics
    group = f"loop-{uuid.uuid4().hex[:8]}"
    sent = feed(settings.kafka, source, 1500)
    # The first member stalls in its second batch longer than max.poll.interval.ms: the group
    # throws it out, its partitions are lost, and its in-flight transaction must be aborted.
    stuck = BatchLoop(
        settings,
        config(
            group,
            source,
            transactional_id=f"{group}-a",
            guarantee="exactly-once",
            # The broker's group.min.session.timeout.ms is 6 s by default.
            max_poll_interval_ms=6000,
            consumer={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        ),
        Copy(target, stall=9.0),
    )
    thread_a, outcome_a = run_in_thread(stuck, RunLimits(until_idle=6, timeout=90))
    deadline = time.monotonic() + 30
    while stuck.step.batches < 2 and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)
    healthy = BatchLoop(
        settings,
        config(group, source, transactional_id=f"{group}-b", guarantee="exactly-once"),
        Copy(target),
    )
    thread_b, _outcome_b = run_in_thread(healthy, RunLimits(until_idle=10, timeout=90))
    thread_a.join(120)
    thread_b.join(120)
    got = values(settings.kafka, target, len(sent))
    assert sorted(got) == sorted(sent)
    messages = " ".join(r.message for r in loop_logs.records)
    assert "lost" in messages or isinstance(outcome_a[0], KafkaError), messages[-2000:]


def test_a_fenced_producer_stops_with_a_message_that_says_so(
    settings: Settings, topics: tuple[str, str]
) -> None:
    source, target = topics
    group = f"loop-{uuid.uuid4().hex[:8]}"
    feed(settings.kafka, source, 500)
    shared = f"{group}-same-id"
    first = BatchLoop(
        settings,
        config(group, source, transactional_id=shared, guarantee="exactly-once", linger_ms=100),
        Copy(target),
        error_type=KafkaError,
    )
    thread_a, outcome_a = run_in_thread(first, RunLimits(until_idle=20, timeout=60))
    wait_for(lambda: first.stats.received > 0, 30, "the first batch", interval=0.05)
    # A second producer with the same transactional.id fences the first one.
    second = BatchLoop(
        settings,
        config(f"{group}-other", source, transactional_id=shared, guarantee="exactly-once"),
        Copy(target),
    )
    second.run(RunLimits(count=50, timeout=60))
    feed(settings.kafka, source, 500, start=500)
    thread_a.join(90)
    assert outcome_a and isinstance(outcome_a[0], KafkaError), outcome_a
    assert "fenced" in str(outcome_a[0]) and shared in str(outcome_a[0])


class _FlakyCommit:
    """A real producer whose first ``commit_transaction`` fails with a retriable error."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self.failures = 0

    def commit_transaction(self, *args: Any) -> None:
        if self.failures == 0:
            self.failures += 1
            raise KafkaException(
                ConfluentError(ConfluentError._TIMED_OUT, "injected timeout", retriable=True)
            )
        self._producer.commit_transaction(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


def test_a_retriable_commit_failure_is_retried_and_commits_once(
    settings: Settings, topics: tuple[str, str], loop_logs: pytest.LogCaptureFixture
) -> None:
    source, target = topics
    group = f"loop-{uuid.uuid4().hex[:8]}"
    sent = feed(settings.kafka, source, 300)
    wrappers: list[_FlakyCommit] = []

    class FlakyLoop(BatchLoop):
        def _make_producer(self) -> Any:
            wrapper = _FlakyCommit(super()._make_producer())
            wrappers.append(wrapper)
            return wrapper

    loop = FlakyLoop(
        settings,
        config(group, source, transactional_id=f"{group}-a", guarantee="exactly-once"),
        Copy(target),
    )
    stats = loop.run(RunLimits(count=len(sent), timeout=60))
    assert stats.received == len(sent) and stats.aborted == 0
    assert wrappers[0].failures == 1
    assert any("retrying" in r.message for r in loop_logs.records)
    assert sorted(values(settings.kafka, target, len(sent))) == sorted(sent)


def test_outputs_kafka_refuses_stop_the_loop_without_committing(
    settings: Settings, topics: tuple[str, str], new_topic: Callable[..., str]
) -> None:
    source, _target = topics
    group = f"loop-{uuid.uuid4().hex[:8]}"
    tiny = new_topic(partitions=1, **{"max.message.bytes": "1024"})
    feed(settings.kafka, source, 50)

    class Big(Copy):
        def process(self, messages: list[Message]) -> BatchResult:
            # Random bytes: compression (lz4) cannot shrink them under the topic's limit.
            return BatchResult([(self.target, os.urandom(4096), None, 0, None) for _ in messages])

    loop = BatchLoop(settings, config(group, source), Big(tiny), error_type=KafkaError)
    with pytest.raises(KafkaError, match="did not accept"):
        loop.run(RunLimits(count=50, timeout=60))
    assert loop.stats.received == 0  # nothing committed: the batch comes again
    again = BatchLoop(settings, config(group, source), Copy(tiny))
    assert again.run(RunLimits(count=50, timeout=60)).received == 50
