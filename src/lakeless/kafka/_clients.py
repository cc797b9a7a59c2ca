"""Factories for confluent-kafka clients configured from `KafkaSettings`.

This is the one place clients are made, so every stage connects, logs and fails the same way.

Every client made here:

- logs through Python logging (logger ``lakeless.kafka.librdkafka``) instead of raw stderr;
- fails fast on bad credentials. librdkafka retries a refused login forever and only logs it;
  here its error callback turns an authentication failure (or a certificate that does not
  verify) into `KafkaAuthenticationError`, raised from the next ``poll``/``consume``/``flush``,
  and a start-up check (a metadata request, `STARTUP_CHECK_S` at most, once per process and
  cluster) raises it before the client is handed out. The message names the bootstrap servers,
  the security protocol and the user;
- names the principal and what it was refused (topic, group, transactional id) when the cluster's
  ACLs do not allow an operation: `KafkaAuthorizationError` from ``consume``/``poll``, from a
  delivery report (before the caller's callback runs), from commits and from the transactional
  calls. A stage without its ACL stops with that message instead of retrying forever.

Example:
    >>> settings = KafkaSettings(bootstrap_servers="b:9096", sasl_username="score")
    >>> principal(settings)
    'User:score'
    >>> principal(KafkaSettings())
    'User:ANONYMOUS'
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka.admin import AdminClient

from lakeless.config import KafkaSettings
from lakeless.errors import KafkaError

__all__ = [
    "STARTUP_CHECK_S",
    "ClusterUnavailable",
    "KafkaAuthenticationError",
    "KafkaAuthorizationError",
    "cluster_unavailable",
    "make_admin",
    "make_consumer",
    "make_producer",
    "principal",
    "produce_waiting",
    "wait_for_broker",
]

logger = logging.getLogger(__name__)
#: librdkafka's own log lines (connection failures, retries) arrive here.
librdkafka_logger = logging.getLogger("lakeless.kafka.librdkafka")


class _Chatter(logging.Filter):
    """librdkafka's own lines at DEBUG (``--log-level debug`` shows them), repeats once a minute.

    librdkafka logs every failed connection attempt at error level, several a second while a
    broker is down; what matters (the cluster does not answer, all brokers are down, a login
    or an ACL is refused) lakeless reports itself, once, with what to do.
    """

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        if not librdkafka_logger.isEnabledFor(logging.DEBUG):
            return False  # the level was checked before this filter lowered it
        # "rdkafka#producer-3" and "after 0ms" vary between repeats of the same line.
        key = re.sub(r"#\w+-\d+|\d+ms", "", record.getMessage())
        now = time.monotonic()
        if now - self._last.get(key, -self.every) < self.every:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


librdkafka_logger.addFilter(_Chatter())

#: Producer defaults for every stage: no loss, no reordering, no duplicates from retries.
SAFE_PRODUCER: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
}

#: A transactional producer closes connections idle this long. librdkafka 2.16 can block
#: ``send_offsets_to_transaction`` forever once the group coordinator's broker has left the
#: cluster (confluentinc/librdkafka#5511, #5456): the call waits for some broker to change
#: state, which closing idle connections provides, so it finds the new coordinator.
TRANSACTIONAL_IDLE_MS: Final = 10_000

#: Longest a new client waits for the cluster's first answer before it is handed out anyway
#: (an unreachable cluster is not an error: librdkafka keeps trying, stages wait).
STARTUP_CHECK_S: Final = 5.0

_AUTHENTICATION: Final = frozenset(
    {ConfluentError._AUTHENTICATION, ConfluentError.SASL_AUTHENTICATION_FAILED}
)
_AUTHORIZATION: Final = {
    ConfluentError.TOPIC_AUTHORIZATION_FAILED: "topic",
    ConfluentError.GROUP_AUTHORIZATION_FAILED: "consumer group",
    ConfluentError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
    ConfluentError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
}
#: Clusters (bootstrap, protocol, user, password) this process has reached already.
_checked: set[tuple[str, str, str | None, str | None]] = set()
_checked_lock = threading.Lock()


class ClusterUnavailable(KafkaError):
    """The cluster did not answer (wrong address, broker down, refused credentials)."""


def cluster_unavailable(
    settings: KafkaSettings, timeout: float, exc: KafkaException
) -> ClusterUnavailable:
    """The error for a metadata request that got no answer: it names the servers."""
    error = exc.args[0] if exc.args else exc
    detail = error.str() if hasattr(error, "str") else str(error)
    return ClusterUnavailable(
        f"Kafka at {settings.bootstrap_servers} did not answer within {timeout:g}s "
        f"({detail}); is the cluster running? (`lakeless stack up`, or set "
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS)"
    )


class KafkaAuthenticationError(KafkaError):
    """The cluster refused the client's credentials (or its certificate did not verify)."""


class KafkaAuthorizationError(KafkaError):
    """The cluster's ACLs do not allow this principal an operation on a topic, group, etc."""


def principal(settings: KafkaSettings) -> str:
    """The principal the cluster sees for ``settings``: ``User:<sasl user>`` or anonymous."""
    if settings.sasl_username:
        return f"User:{settings.sasl_username}"
    if settings.ssl_certificate_location:
        return "the principal of the client certificate"
    return "User:ANONYMOUS"


class _Guard:
    """Turns librdkafka's authentication and authorization errors into clear exceptions.

    Callbacks only record the failure: an exception raised inside a librdkafka callback can
    collide with the one the C call itself raises (a ``SystemError``). The client methods raise
    it once the call has returned (`raise_failure`).
    """

    def __init__(self, settings: KafkaSettings, config: dict[str, Any]) -> None:
        self.settings = settings
        self.group: str | None = config.get("group.id")
        self.transactional_id: str | None = config.get("transactional.id")
        self.failure: KafkaError | None = None
        #: The topic of the first ``produce`` (named when an idempotent producer is refused).
        self.topic: str | None = None
        self._refusal: ConfluentError | None = None

    def where(self) -> str:
        s = self.settings
        sasl = f", {s.sasl_mechanism}" if s.sasl_mechanism else ""
        return f"{s.bootstrap_servers} ({s.security_protocol}{sasl})"

    def raise_failure(self, cause: BaseException | None = None) -> None:
        """Raise the recorded failure, if any."""
        if self.failure is None:
            return
        if self._refusal is not None and self.topic is not None:
            # Refused before the first record was produced: name the topic it was for.
            self.failure, self._refusal = self.refused(self._refusal, self.topic), None
        raise self.failure from cause

    def on_error(self, error: ConfluentError) -> None:
        """The ``error_cb`` of librdkafka (runs inside poll/consume/flush)."""
        code = error.code()
        reason = error.str()
        if code in _AUTHENTICATION:
            user = self.settings.sasl_username
            self.failure = KafkaAuthenticationError(
                f"Kafka authentication failed for user {user!r} at {self.where()}: {reason} "
                "(check LAKELESS_KAFKA__SASL_USERNAME and LAKELESS_KAFKA__SASL_PASSWORD)"
                if user
                else f"Kafka authentication failed at {self.where()}: {reason}"
            )
        elif code == ConfluentError._SSL and "verify failed" in reason:
            self.failure = KafkaAuthenticationError(
                f"Kafka TLS authentication failed at {self.where()}: the broker's certificate "
                f"does not verify ({reason}; check LAKELESS_KAFKA__SSL_CA_LOCATION)"
            )
        elif code in _AUTHORIZATION:
            self.failure = self.refused(error, self.topic)
            if self.topic is None:
                self._refusal = error
        if self.failure is not None:
            return
        if error.fatal():
            logger.error("Kafka client error at %s: %s", self.where(), reason)
        elif code == ConfluentError._ALL_BROKERS_DOWN:
            logger.warning("no Kafka broker reachable at %s (retrying): %s", self.where(), reason)
        else:
            logger.debug("Kafka client error at %s: %s", self.where(), reason)

    def refused(self, error: ConfluentError, topic: str | None = None) -> KafkaAuthorizationError:
        """The error for an authorization failure ``error`` (naming resource and principal)."""
        code = error.code()
        who = principal(self.settings)
        detail = f"{error.name()} ({error.str()})"
        if code == ConfluentError.CLUSTER_AUTHORIZATION_FAILED and "idempotence" in error.str():
            # KIP-679: an idempotent producer needs WRITE on some topic (or IDEMPOTENT_WRITE).
            return KafkaAuthorizationError(
                f"Kafka refused {who} a producer at {self.where()}: it may write to no topic"
                + (f" (it was producing to topic {topic!r})" if topic else "")
                + f"; {detail}; the cluster has no ACL allowing WRITE for it"
            )
        kind = _AUTHORIZATION.get(code, "resource")
        name: str | None = {
            "topic": topic,
            "consumer group": self.group,
            "transactional id": self.transactional_id,
        }.get(kind)
        what = f"{kind} {name!r}" if name else kind
        return KafkaAuthorizationError(
            f"Kafka refused {who} access to {what} at {self.where()}: {detail}; "
            "the cluster has no ACL allowing it"
        )

    def check_exception(self, exc: KafkaException, topic: str | None = None) -> None:
        """Raise the recorded failure, or `KafkaAuthorizationError` if ``exc`` is one."""
        self.raise_failure(exc)
        error = exc.args[0] if exc.args else None
        if isinstance(error, ConfluentError) and error.code() in _AUTHORIZATION:
            raise self.refused(error, topic) from exc

    def check_messages(self, messages: list[Any]) -> None:
        """Raise on an authorization error among consumed ``messages`` (or one recorded)."""
        self.raise_failure()
        for message in messages:
            error = message.error()
            if error is not None and error.code() in _AUTHORIZATION:
                raise self.refused(error, message.topic())

    def on_delivery(
        self, callback: Callable[..., Any] | None, error: ConfluentError | None, message: Any
    ) -> None:
        """Delivery reports: an authorization error is recorded, the caller's callback not run."""
        try:
            code = None if error is None else error.code()
        except SystemError as exc:
            # confluent-kafka purges the queue of a failed producer with its own exception
            # pending (a fatal error, e.g. a refused producer id): record that one instead.
            cause = exc.__cause__ or exc.__context__
            fatal = cause.args[0] if isinstance(cause, KafkaException) and cause.args else None
            if self.failure is None and isinstance(fatal, ConfluentError):
                self.failure = (
                    self.refused(fatal, self.topic)
                    if fatal.code() in _AUTHORIZATION
                    else KafkaError(f"Kafka producer failed at {self.where()}: {fatal.str()}")
                )
            return
        if code in _AUTHORIZATION:
            if self.failure is None and error is not None:
                self.failure = self.refused(error, message.topic())
            return
        if callback is not None:
            callback(error, message)


class _GuardedConsumer(Consumer):  # type: ignore[misc]
    """A `Consumer` whose authorization failures raise `KafkaAuthorizationError`."""

    def __init__(self, config: dict[str, Any], guard: _Guard) -> None:
        super().__init__(config)
        self._guard = guard

    def consume(self, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            messages: list[Any] = super().consume(*args, **kwargs)
        except KafkaException as exc:
            self._guard.check_exception(exc)
            raise
        self._guard.check_messages(messages)
        return messages

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        try:
            message = super().poll(*args, **kwargs)
        except KafkaException as exc:
            self._guard.check_exception(exc)
            raise
        self._guard.check_messages([] if message is None else [message])
        return message

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded(self._guard, super().commit, *args, **kwargs)

    def committed(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded(self._guard, super().committed, *args, **kwargs)


class _GuardedProducer(Producer):  # type: ignore[misc]
    """A `Producer` whose authorization failures raise `KafkaAuthorizationError`."""

    def __init__(self, config: dict[str, Any], guard: _Guard) -> None:
        super().__init__(config)
        self._guard = guard
        self._callback: Any = None
        self._wrapped: Any = None

    def produce(self, *args: Any, **kwargs: Any) -> None:
        guard = self._guard
        if guard.topic is None or guard.failure is not None:
            if guard.topic is None:
                guard.topic = args[0] if args else kwargs.get("topic")
            guard.raise_failure()
        callback = kwargs.get("on_delivery") or kwargs.pop("callback", None)
        if callback is not None:
            # Stages pass one callback per batch: wrap it once, not per record (hot path).
            if callback != self._callback:
                self._callback = callback
                self._wrapped = functools.partial(guard.on_delivery, callback)
            kwargs["on_delivery"] = self._wrapped
        try:
            super().produce(*args, **kwargs)
        except KafkaException as exc:
            guard.check_exception(exc, args[0] if args else kwargs.get("topic"))
            raise

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded(self._guard, super().poll, *args, **kwargs)

    def flush(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded(self._guard, super().flush, *args, **kwargs)

    def init_transactions(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded(self._guard, super().init_transactions, *args, **kwargs)

    def send_offsets_to_transaction(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded(self._guard, super().send_offsets_to_transaction, *args, **kwargs)

    def commit_transaction(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded(self._guard, super().commit_transaction, *args, **kwargs)


class _GuardedAdmin(AdminClient):  # type: ignore[misc]
    """An `AdminClient` whose ``poll`` raises a refused login (recorded by the callback)."""

    def __init__(self, config: dict[str, Any], guard: _Guard) -> None:
        super().__init__(config)
        self._guard = guard

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded(self._guard, super().poll, *args, **kwargs)


def _guarded(guard: _Guard, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``method``; raise the guard's failure (recorded by a callback) or translate.

    A client that failed already is not called again: after a fatal error, confluent-kafka
    may run delivery callbacks with its own exception pending, which ends in a
    ``SystemError`` instead of the error that matters.
    """
    guard.raise_failure()
    try:
        result = method(*args, **kwargs)
    except KafkaException as exc:
        guard.check_exception(exc)
        raise
    except SystemError as exc:
        guard.raise_failure(exc)
        raise
    guard.raise_failure()
    return result


def _configure(settings: KafkaSettings, config: dict[str, Any]) -> _Guard:
    guard = _Guard(settings, config)
    config["error_cb"] = guard.on_error
    config.setdefault("logger", librdkafka_logger)
    return guard


def _startup_check(client: Any, settings: KafkaSettings, guard: _Guard, timeout: float) -> None:
    """Wait (``timeout`` s at most) for the cluster's first answer; raise on refused logins."""
    secret = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    key = (
        settings.bootstrap_servers,
        settings.security_protocol,
        settings.sasl_username,
        hashlib.sha256(secret.encode()).hexdigest() if secret else None,  # no second copy
    )
    with _checked_lock:
        if key in _checked:
            return
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except KafkaException:
            pass
        else:
            with _checked_lock:
                _checked.add(key)
            return
        try:
            client.poll(0)  # serves the error callback, which records a refused login
        except KafkaAuthorizationError:
            return  # raised again by the first produce or consume, naming its topic
        if time.monotonic() >= deadline:
            logger.warning(
                "Kafka at %s did not answer within %.0fs; going on (the client keeps trying)",
                guard.where(),
                timeout,
            )
            return


def make_producer(settings: KafkaSettings, *, check: bool = True, **overrides: Any) -> Producer:
    """An idempotent, ``acks=all`` producer; ``overrides`` use ``_`` for ``.``.

    Args:
        settings: the cluster and credentials.
        check: run the start-up check (see the module docstring).
        **overrides: librdkafka properties (``linger_ms=20`` -> ``linger.ms``).

    Raises:
        KafkaAuthenticationError: the cluster refused the credentials.
    """
    config = {**SAFE_PRODUCER, **settings.librdkafka(**overrides)}
    if "transactional.id" in config:
        config.setdefault("connections.max.idle.ms", TRANSACTIONAL_IDLE_MS)
    guard = _configure(settings, config)
    # Records produced without a callback of their own are still checked.
    config.setdefault("on_delivery", functools.partial(guard.on_delivery, None))
    producer = _GuardedProducer(config, guard)
    if check:
        _startup_check(producer, settings, guard, STARTUP_CHECK_S)
    return producer


def produce_waiting(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None = None,
    *,
    wait: float = 0.05,
    **kwargs: Any,
) -> None:
    """``producer.produce(topic, value, key, **kwargs)``, waiting while its queue is full.

    A full local queue (``BufferError``) is not an error: ``producer.poll(wait)`` serves
    delivery reports, which frees room, and the record is produced again. (The batch loop and
    the simulator's sinks keep this loop inline: one call fewer per record on their hot path.)
    """
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return
        except BufferError:
            producer.poll(wait)


def make_consumer(
    settings: KafkaSettings,
    group_id: str,
    *,
    check: bool = True,
    on_commit: Callable[[Any, list[Any]], None] | None = None,
    **overrides: Any,
) -> Consumer:
    """A consumer in ``group_id`` that commits only when told (``enable.auto.commit=false``).

    ``on_commit`` receives the result of every commit (asynchronous ones included).

    Raises:
        KafkaAuthenticationError: the cluster refused the credentials.
    """
    config = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **settings.librdkafka(**overrides),
    }
    if on_commit is not None:
        config["on_commit"] = on_commit
    guard = _configure(settings, config)
    consumer = _GuardedConsumer(config, guard)
    if check:
        _startup_check(consumer, settings, guard, STARTUP_CHECK_S)
    return consumer


def make_admin(settings: KafkaSettings, *, check: bool = True) -> AdminClient:
    """An admin client.

    Raises:
        KafkaAuthenticationError: the cluster refused the credentials.
    """
    config = settings.librdkafka()
    guard = _configure(settings, config)
    admin = _GuardedAdmin(config, guard)
    if check:
        _startup_check(admin, settings, guard, STARTUP_CHECK_S)
    return admin


def cluster_metadata(settings: KafkaSettings, timeout: float = 10.0) -> Any:
    """The cluster's metadata (brokers and topics), once a broker answers.

    Asks with short timeouts, serving the error callback in between, so that a refused login
    fails within a second or two, not after ``timeout``.

    Raises:
        KafkaAuthenticationError: the cluster refused the credentials.
        ClusterUnavailable: no broker answered within ``timeout`` seconds (names the servers).
    """
    admin = make_admin(settings, check=False)
    deadline = time.monotonic() + timeout
    last: KafkaException | None = None
    while True:
        try:
            metadata = admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            if metadata.brokers:
                return metadata
        except KafkaException as exc:
            last = exc
        admin.poll(0)  # raises a refused login
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if last is None:
        last = KafkaException(ConfluentError(ConfluentError._TIMED_OUT, "no broker in metadata"))
    raise cluster_unavailable(settings, timeout, last)


def wait_for_broker(settings: KafkaSettings, timeout: float = 60.0) -> int:
    """Block until the cluster answers a metadata request; return its broker count.

    Raises:
        KafkaAuthenticationError: the cluster refused the credentials.
        ClusterUnavailable: no answer within ``timeout`` seconds.
    """
    return len(cluster_metadata(settings, timeout).brokers)
