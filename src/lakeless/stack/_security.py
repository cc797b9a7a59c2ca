"""A secured stack: TLS certificates, SCRAM users, one principal per stage with its ACLs.

``lakeless stack up --secure`` keeps everything under the data dir:

- ``secrets.json`` (mode 0600): a random password per principal (``admin`` and every stage of
  `STAGE_ACCESS`) and one for the key stores, made at the first ``up`` and kept; never logged.
- ``tls/``: a CA and a broker certificate (``SAN=dns:localhost,ip:127.0.0.1``) made with the
  JDK's ``keytool``: ``ca.pem`` for librdkafka and paho, ``broker.p12`` and ``truststore.p12``
  for Kafka, ``broker.pem`` and ``broker.key`` (0600; converted with ``openssl``) for Mosquitto.
- ``client.env`` (the ``admin`` principal) and ``client-<stage>.env`` (that stage's own), all
  0600: the ``LAKELESS_KAFKA__*`` and ``LAKELESS_MQTT__*`` variables a process needs.

Kafka: the client listener is SASL_SSL with SCRAM-SHA-512, the controller listener PLAINTEXT on
loopback; the users are added when the storage is formatted (``--add-scram``); the
StandardAuthorizer denies what no ACL allows; ``admin`` and ``ANONYMOUS`` (the PLAINTEXT
controller link between the nodes) are super users. Mosquitto: TLS on its one listener, a
password file (``mosquitto_passwd``) with the same principals, and an ACL file.

The ACLs follow `STAGE_ACCESS`, one table: what each stage's principal may read and write.

Example:
    >>> from lakeless.config import TopicSettings
    >>> score = STAGES["score"]
    >>> score.topics_read(TopicSettings()), score.topics_written(TopicSettings())
    (['sensor-clean', 'lakeless.models'], ['anomalies', 'scores'])
    >>> score.transactional_ids
    ('lakeless-score',)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from lakeless.config import KafkaSettings, TopicSettings
from lakeless.errors import StackError

__all__ = ["ADMIN", "STAGES", "STAGE_ACCESS", "StackSecurity", "StageAccess"]

logger = logging.getLogger(__name__)

#: The super user: creates topics, registers models from tests, runs anything.
ADMIN: Final = "admin"
_SCRAM: Final = "SCRAM-SHA-512"
_SAN: Final = "SAN=dns:localhost,ip:127.0.0.1"
_VALIDITY_DAYS: Final = "3650"


@dataclass(frozen=True)
class StageAccess:
    """What one stage's principal (``User:<name>``) may do.

    Topics are named by their `TopicSettings` field (``"raw"``, ``"clean"``, ...), so renamed
    topics keep their ACLs. Groups and transactional ids are prefixes (``PREFIXED`` ACLs):
    ``lakeless-score`` allows ``lakeless-score`` and ``lakeless-score-2``.

    Attributes:
        name: the stage, and its principal's user name.
        read: topics it consumes (READ, which implies DESCRIBE).
        write: topics it produces to (WRITE).
        groups: consumer-group prefixes it joins or commits in (READ).
        describe_groups: consumer-group prefixes whose offsets it may only look at (DESCRIBE).
        transactional_ids: transactional-id prefixes (WRITE and DESCRIBE; exactly-once).
        mqtt: what it does on ``vehicles/+/sensors``: ``"write"``, ``"read"`` or nothing.
    """

    name: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    describe_groups: tuple[str, ...] = ()
    transactional_ids: tuple[str, ...] = ()
    mqtt: str | None = None

    def topics_read(self, topics: TopicSettings) -> list[str]:
        """The topic names it reads."""
        return [getattr(topics, field) for field in self.read]

    def topics_written(self, topics: TopicSettings) -> list[str]:
        """The topic names it writes."""
        return [getattr(topics, field) for field in self.write]


_ALL_TOPICS: Final = ("raw", "clean", "dlq", "models", "anomalies", "scores")

#: One principal per stage and what it may do; the README's "Run on a real cluster" shows it.
#: Registry readers assign partition 0 with the group id ``lakeless-registry`` (never joined),
#: and training reads its window with ``lakeless-dataset``: both need their group.
STAGE_ACCESS: Final = (
    StageAccess("simulate", write=("raw",), mqtt="write"),
    StageAccess("bridge", write=("raw",), mqtt="read"),
    StageAccess("import", write=("raw",)),
    StageAccess(
        "preprocess", read=("raw",), write=("clean", "dlq"), groups=("lakeless-preprocess",)
    ),
    StageAccess(
        "train",
        read=("clean", "models"),
        write=("models",),
        groups=("lakeless-dataset", "lakeless-registry"),
    ),
    StageAccess(
        "score",
        read=("clean", "models"),
        write=("anomalies", "scores"),
        groups=("lakeless-score", "lakeless-registry"),
        transactional_ids=("lakeless-score",),
    ),
    StageAccess("serve", read=("models",), groups=("lakeless-registry",)),
    StageAccess("twin", read=("clean", "anomalies"), groups=("lakeless-twin",)),
    # The dashboard shows every topic and every stage's lag, and trains from its button.
    StageAccess(
        "dashboard",
        read=_ALL_TOPICS,
        write=("models",),
        groups=("lakeless-dashboard", "lakeless-dataset", "lakeless-registry"),
        describe_groups=("lakeless-",),
    ),
)
STAGES: Final = {stage.name: stage for stage in STAGE_ACCESS}
PRINCIPALS: Final = (ADMIN, *STAGES)


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **env}, check=False
    )
    if result.returncode != 0:
        raise StackError(f"{what} failed ({argv[0]}): {result.stdout}{result.stderr}")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (also when it existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)


class StackSecurity:
    """The secrets, certificates, env files and ACLs of a secured stack in ``data_dir``.

    Nothing is made until `ensure`; the files of an earlier ``up`` are kept and reused.
    """

    def __init__(self, data_dir: Path) -> None:
        self.home = data_dir.resolve()
        self.secrets_file = self.home / "secrets.json"
        self.tls_dir = self.home / "tls"
        self._passwords: dict[str, SecretStr] | None = None

    # ---- secrets and certificates ------------------------------------------------------------

    @property
    def ca_pem(self) -> Path:
        """The CA certificate (PEM) clients verify the brokers with."""
        return self.tls_dir / "ca.pem"

    @property
    def keystore(self) -> Path:
        """The brokers' PKCS12 key store (key, certificate, CA)."""
        return self.tls_dir / "broker.p12"

    @property
    def truststore(self) -> Path:
        """PKCS12 trust store with the CA (the brokers' own client side)."""
        return self.tls_dir / "truststore.p12"

    @property
    def cert_pem(self) -> Path:
        """The broker certificate as PEM (Mosquitto)."""
        return self.tls_dir / "broker.pem"

    @property
    def key_pem(self) -> Path:
        """The broker's private key as PEM (Mosquitto; mode 0600)."""
        return self.tls_dir / "broker.key"

    def exists(self) -> bool:
        """Whether an earlier ``up --secure`` made the secrets."""
        return self.secrets_file.exists()

    def ensure(self) -> None:
        """Make what is missing: passwords, then certificates.

        Raises:
            StackError: ``keytool`` or ``openssl`` is missing or failed.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.secrets_file.exists():
            made = {name: secrets.token_urlsafe(24) for name in (*PRINCIPALS, "keystore")}
            _write_private(self.secrets_file, json.dumps(made, indent=2) + "\n")
            logger.info("made passwords for %s in %s", ", ".join(PRINCIPALS), self.secrets_file)
        self._passwords = None
        if not (self.keystore.exists() and self.key_pem.exists() and self.truststore.exists()):
            self._make_certificates()

    def passwords(self) -> dict[str, SecretStr]:
        """Principal (and ``keystore``) -> password.

        Raises:
            StackError: the secrets were never made (no ``up --secure`` in this data dir).
        """
        if self._passwords is None:
            try:
                raw = json.loads(self.secrets_file.read_text())
            except FileNotFoundError as exc:
                raise StackError(
                    f"no secrets in {self.home}: start it with `lakeless stack up --secure`"
                ) from exc
            missing = [name for name in (*PRINCIPALS, "keystore") if name not in raw]
            if missing:  # a newer lakeless with more stages than this data dir
                raw |= {name: secrets.token_urlsafe(24) for name in missing}
                _write_private(self.secrets_file, json.dumps(raw, indent=2) + "\n")
            self._passwords = {name: SecretStr(value) for name, value in raw.items()}
        return self._passwords

    def password(self, principal: str) -> str:
        """The password of ``principal`` (or of the key stores, ``"keystore"``)."""
        return self.passwords()[principal].get_secret_value()

    def redact(self, text: str) -> str:
        """``text`` with every password replaced by ``***`` (for error messages)."""
        if not self.secrets_file.exists():
            return text
        for secret in self.passwords().values():
            text = text.replace(secret.get_secret_value(), "***")
        return text

    def _make_certificates(self) -> None:
        keytool = shutil.which("keytool") or _beside_java("keytool")
        openssl = shutil.which("openssl")
        if keytool is None:
            raise StackError("keytool (the JDK's) is missing: install OpenJDK 17")
        if openssl is None:
            raise StackError("openssl is missing: run `make setup` (installs Debian's openssl)")
        tls = self.tls_dir
        if tls.exists():
            shutil.rmtree(tls)
        tls.mkdir(parents=True, mode=0o700)
        env = {"LAKELESS_STORE_PASSWORD": self.password("keystore")}
        pw = ["-storepass:env", "LAKELESS_STORE_PASSWORD"]
        ca, broker, csr, crt = tls / "ca.p12", self.keystore, tls / "broker.csr", tls / "broker.crt"
        key_args = ["-keyalg", "RSA", "-keysize", "2048", "-validity", _VALIDITY_DAYS]
        steps: list[tuple[str, list[str]]] = [
            ("CA key", ["-genkeypair", "-alias", "ca", "-dname", "CN=lakeless test CA",
                        *key_args, "-ext", "bc:c", "-keystore", str(ca), "-storetype", "PKCS12"]),
            ("CA certificate", ["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca),
                                "-file", str(self.ca_pem)]),
            ("broker key", ["-genkeypair", "-alias", "broker", "-dname", "CN=localhost",
                            *key_args, "-ext", _SAN, "-keystore", str(broker),
                            "-storetype", "PKCS12"]),
            ("certificate request", ["-certreq", "-alias", "broker", "-keystore", str(broker),
                                     "-file", str(csr)]),
            ("broker certificate", ["-gencert", "-alias", "ca", "-keystore", str(ca),
                                    "-infile", str(csr), "-outfile", str(crt), "-rfc",
                                    "-validity", _VALIDITY_DAYS, "-ext", _SAN,
                                    "-ext", "ku:c=digitalSignature,keyEncipherment",
                                    "-ext", "eku=serverAuth,clientAuth"]),
            ("CA into the key store", ["-importcert", "-noprompt", "-alias", "ca",
                                       "-file", str(self.ca_pem), "-keystore", str(broker)]),
            ("certificate into the key store", ["-importcert", "-alias", "broker",
                                                "-file", str(crt), "-keystore", str(broker)]),
            ("trust store", ["-importcert", "-noprompt", "-alias", "ca", "-file",
                             str(self.ca_pem), "-keystore", str(self.truststore),
                             "-storetype", "PKCS12"]),
        ]  # fmt: skip
        for what, args in steps:
            _run([keytool, *args, *pw], env, f"keytool ({what})")
        _run(
            [openssl, "pkcs12", "-in", str(broker), "-nocerts", "-nodes",
             "-passin", "env:LAKELESS_STORE_PASSWORD", "-out", str(self.key_pem)],
            env,
            "openssl (the broker key as PEM)",
        )  # fmt: skip
        self.key_pem.chmod(0o600)
        shutil.copyfile(crt, self.cert_pem)
        for path in tls.iterdir():
            path.chmod(0o600 if path.suffix in (".p12", ".key") else 0o644)
        logger.info("made a CA and broker certificates with keytool in %s", tls)

    # ---- Kafka -------------------------------------------------------------------------------

    def format_arguments(self) -> list[str]:
        """``--add-scram`` arguments for the storage tool: every principal."""
        args: list[str] = []
        for name in PRINCIPALS:
            args += ["--add-scram", f"{_SCRAM}=[name={name},password={self.password(name)}]"]
        return args

    def broker_properties(self) -> str:
        """The ``server.properties`` lines of a secured node (contains secrets)."""
        store = self.password("keystore")
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{self.password(ADMIN)}";'
        )
        trust = {
            "ssl.truststore.location": str(self.truststore),
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.password": store,
        }
        lines = {
            "sasl.enabled.mechanisms": _SCRAM,
            "sasl.mechanism.inter.broker.protocol": _SCRAM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.keystore),
            "listener.name.sasl_ssl.ssl.keystore.type": "PKCS12",
            "listener.name.sasl_ssl.ssl.keystore.password": store,
            "listener.name.sasl_ssl.ssl.key.password": store,
            **{f"listener.name.sasl_ssl.{key}": value for key, value in trust.items()},
            **trust,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            # ANONYMOUS: the PLAINTEXT controller listener (loopback only) between the nodes.
            "super.users": f"User:{ADMIN};User:ANONYMOUS",
            # The remote-log metadata manager's own clients use the SASL_SSL listener.
            "rlmm.config.remote.log.metadata.common.client.sasl.mechanism": _SCRAM,
            "rlmm.config.remote.log.metadata.common.client.sasl.jaas.config": jaas,
            **{
                f"rlmm.config.remote.log.metadata.common.client.{key}": value
                for key, value in trust.items()
            },
        }
        body = "\n".join(f"{key}={value}" for key, value in lines.items())
        return (
            f"\n# Secured (`lakeless stack up --secure`): SASL_SSL, SCRAM-SHA-512, ACLs.\n{body}\n"
        )

    def client_settings(self, bootstrap: str, principal: str = ADMIN) -> KafkaSettings:
        """Client settings for ``principal`` (SASL_SSL, SCRAM-SHA-512, the stack's CA)."""
        return KafkaSettings(
            bootstrap_servers=bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism=_SCRAM,
            sasl_username=principal,
            sasl_password=self.passwords()[principal],
            ssl_ca_location=str(self.ca_pem),
        )

    def apply_acls(self, admin_settings: KafkaSettings, topics: TopicSettings) -> int:
        """Create the ACLs of `STAGE_ACCESS` (idempotent); returns how many bindings.

        Raises:
            StackError: the cluster refused them.
        """
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import (
            AclBinding,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        from lakeless.kafka import make_admin

        def allow(kind: object, name: str, pattern: object, user: str, op: object) -> object:
            return AclBinding(kind, name, pattern, f"User:{user}", "*", op, AclPermissionType.ALLOW)

        literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
        bindings = []
        for stage in STAGE_ACCESS:
            for topic in stage.topics_read(topics):
                bindings.append(allow(ResourceType.TOPIC, topic, literal, stage.name,
                                      AclOperation.READ))  # fmt: skip
            for topic in stage.topics_written(topics):
                for op in (AclOperation.WRITE, AclOperation.DESCRIBE):
                    bindings.append(allow(ResourceType.TOPIC, topic, literal, stage.name, op))
            for group in stage.groups:
                bindings.append(allow(ResourceType.GROUP, group, prefixed, stage.name,
                                      AclOperation.READ))  # fmt: skip
            for group in stage.describe_groups:
                bindings.append(allow(ResourceType.GROUP, group, prefixed, stage.name,
                                      AclOperation.DESCRIBE))  # fmt: skip
            for txn in stage.transactional_ids:
                for op in (AclOperation.WRITE, AclOperation.DESCRIBE):
                    bindings.append(
                        allow(ResourceType.TRANSACTIONAL_ID, txn, prefixed, stage.name, op)
                    )
        admin = make_admin(admin_settings)
        futures = admin.create_acls(bindings, request_timeout=30)
        for binding, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                raise StackError(f"cannot create ACL {binding}: {exc}") from exc
        return len(bindings)

    # ---- env files ---------------------------------------------------------------------------

    def env_file(self, principal: str = ADMIN) -> Path:
        """``client.env`` for ``admin``, ``client-<stage>.env`` for a stage."""
        return self.home / ("client.env" if principal == ADMIN else f"client-{principal}.env")

    def client_env(self, principal: str, bootstrap: str, mqtt_url: str) -> dict[str, str]:
        """The ``LAKELESS_*`` variables that connect a process as ``principal``."""
        return {
            "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "LAKELESS_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "LAKELESS_KAFKA__SASL_MECHANISM": _SCRAM,
            "LAKELESS_KAFKA__SASL_USERNAME": principal,
            "LAKELESS_KAFKA__SASL_PASSWORD": self.password(principal),
            "LAKELESS_KAFKA__SSL_CA_LOCATION": str(self.ca_pem),
            "LAKELESS_MQTT__URL": mqtt_url,
            "LAKELESS_MQTT__USERNAME": principal,
            "LAKELESS_MQTT__PASSWORD": self.password(principal),
            "LAKELESS_MQTT__CA_LOCATION": str(self.ca_pem),
        }

    def write_env_files(self, bootstrap: str, mqtt_url: str) -> list[Path]:
        """Write ``client.env`` and every ``client-<stage>.env`` (mode 0600)."""
        written = []
        for principal in PRINCIPALS:
            variables = self.client_env(principal, bootstrap, mqtt_url)
            lines = [
                f"# lakeless stack: settings of principal User:{principal} (keep private).",
                "# Use: set -a; . THIS_FILE; set +a   (or LAKELESS_ENV_FILE=THIS_FILE)",
                *(f"{key}={shlex.quote(value)}" for key, value in variables.items()),
            ]
            path = self.env_file(principal)
            _write_private(path, "\n".join(lines) + "\n")
            written.append(path)
        return written

    # ---- Mosquitto ---------------------------------------------------------------------------

    def mosquitto_config(self, folder: Path) -> str:
        """The secured part of ``mosquitto.conf``; writes its password and ACL files."""
        password_file, acl_file = folder / "passwd", folder / "acl"
        _write_private(
            password_file, "".join(f"{name}:{self.password(name)}\n" for name in PRINCIPALS)
        )
        binary = shutil.which("mosquitto_passwd")
        if binary is None:
            raise StackError("mosquitto_passwd is missing: run `make setup` (Debian's mosquitto)")
        _run([binary, "-U", str(password_file)], {}, "mosquitto_passwd (hashing the passwords)")
        password_file.chmod(0o600)
        acl = [f"user {ADMIN}", "topic readwrite #", ""]
        for stage in STAGE_ACCESS:
            if stage.mqtt:
                acl += [f"user {stage.name}", f"topic {stage.mqtt} vehicles/+/sensors", ""]
        _write_private(acl_file, "\n".join(acl))
        return "\n".join(
            [
                f"cafile {self.ca_pem}",
                f"certfile {self.cert_pem}",
                f"keyfile {self.key_pem}",
                "tls_version tlsv1.2",
                "allow_anonymous false",
                f"password_file {password_file}",
                f"acl_file {acl_file}",
            ]
        )


def _beside_java(tool: str) -> str | None:
    java = shutil.which("java")
    if java is None:
        return None
    with contextlib.suppress(OSError):
        candidate = Path(java).resolve().parent / tool
        if candidate.exists():
            return str(candidate)
    return None
