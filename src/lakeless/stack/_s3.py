"""The stack's S3 tier: s3proxy (an S3-compatible server, filesystem backend) and the broker keys.

``lakeless stack up --tier s3`` starts s3proxy on loopback with its objects under
``<data-dir>/s3/data`` and tiers closed segments into its bucket through lakeless' own
RemoteStorageManager (``jvm/s3-tier``, built by ``make setup``). The S3 identity and secret are
generated at the first start and kept, readable by the owner only, in ``<data-dir>/s3``: the
broker's plugin reads them from the credentials file, so they never appear in
``server.properties``, on a command line or in a log.

Example:
    >>> from pathlib import Path
    >>> proxy = S3Proxy(Path("/tmp/lakeless-doc"), 19000)
    >>> proxy.endpoint
    'http://127.0.0.1:19000'
    >>> proxy.home.name
    's3'
"""

from __future__ import annotations

import configparser
import http.client
import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Final

from lakeless.errors import StackError
from lakeless.stack._process import Daemon, port_answers, port_is_free

__all__ = [
    "RSM_CLASS",
    "S3Proxy",
    "copy_failures",
    "find_s3_plugin_dir",
    "find_s3proxy_jar",
    "s3_tier_broker_config",
]

logger = logging.getLogger(__name__)

#: lakeless' RemoteStorageManager (``jvm/s3-tier``).
RSM_CLASS: Final = "io.lakeless.tier.s3.S3RemoteStorageManager"
#: Where `make setup` leaves the plugin's jars and s3proxy, relative to the repository root.
PLUGIN_SUBDIR: Final = Path("jvm/s3-tier/target/plugin")
S3PROXY_SUBPATH: Final = Path("jvm/s3-tier/target/s3proxy/s3proxy.jar")
DEFAULT_BUCKET: Final = "lakeless"
#: The line the plugin logs (WARN) for every failed copy; the broker retries the segment.
_COPY_FAILED: Final = re.compile(r"copying segment \S+ of \S+ to \S+ failed")


def _repo_candidates(subpath: Path) -> list[Path]:
    # An editable install sits in <repo>/src/lakeless; otherwise look from the working directory.
    return [Path(__file__).resolve().parents[3] / subpath, Path.cwd() / subpath]


def find_s3_plugin_dir(explicit: Path | None = None) -> Path:
    """The S3 RemoteStorageManager's jars: ``explicit``, ``$LAKELESS_S3_PLUGIN_DIR`` or the repo's.

    Raises:
        StackError: no folder holding a ``lakeless-s3-tier-*.jar`` was found.
    """
    candidates = [explicit] if explicit else []
    if env := os.environ.get("LAKELESS_S3_PLUGIN_DIR"):
        candidates.append(Path(env))
    for folder in [*candidates, *_repo_candidates(PLUGIN_SUBDIR)]:
        if any(folder.glob("lakeless-s3-tier-*.jar")):
            return folder.resolve()
    raise StackError(
        "the S3 tier plugin is missing: run `make setup` (it builds jvm/ with Maven into "
        f"{PLUGIN_SUBDIR}) or point LAKELESS_S3_PLUGIN_DIR at its folder"
    )


def find_s3proxy_jar(explicit: Path | None = None) -> Path:
    """s3proxy's jar-with-dependencies: ``explicit``, ``$LAKELESS_S3PROXY_JAR`` or the repo's.

    Raises:
        StackError: the jar was not found.
    """
    candidates = [explicit] if explicit else []
    if env := os.environ.get("LAKELESS_S3PROXY_JAR"):
        candidates.append(Path(env))
    for jar in [*candidates, *_repo_candidates(S3PROXY_SUBPATH)]:
        if jar.is_file():
            return jar.resolve()
    raise StackError(
        f"s3proxy is missing: run `make setup` (Maven copies it to {S3PROXY_SUBPATH}) "
        "or point LAKELESS_S3PROXY_JAR at an s3proxy jar-with-dependencies"
    )


def s3_tier_broker_config(
    *,
    bucket: str,
    endpoint: str | None = None,
    region: str = "us-east-1",
    prefix: str = "",
    credentials_file: Path | None = None,
    path_style: bool = True,
    plugin_dir: Path | None = None,
) -> dict[str, str]:
    """Broker properties that tier to S3 through lakeless' RemoteStorageManager.

    ``plugin_dir`` is taken as it is (a path on the broker's machine); by default the jars
    `make setup` built (`find_s3_plugin_dir`). Without ``credentials_file`` the plugin uses the
    AWS SDK's default chain (the broker's environment ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``, roles).

    Example:
        >>> config = s3_tier_broker_config(
        ...     bucket="b", endpoint="http://127.0.0.1:19000", plugin_dir=Path("/opt/p")
        ... )
        >>> config["remote.log.storage.manager.class.path"], config["rsm.config.s3.bucket"]
        ('/opt/p/*', 'b')
    """
    config = {
        "remote.log.storage.manager.class.name": RSM_CLASS,
        # A folder with "/*": Kafka's child-first plugin loader takes every jar in it.
        "remote.log.storage.manager.class.path": f"{plugin_dir or find_s3_plugin_dir()}/*",
        "rsm.config.s3.bucket": bucket,
        "rsm.config.s3.region": region,
        "rsm.config.s3.prefix": prefix,
        "rsm.config.s3.path.style": str(path_style).lower(),
        # Records read from the remote tier are sent from heap buffers, and the JDK copies all
        # that is left of a heap buffer into a direct one on every socket write: with Kafka's
        # 100 KiB send buffer a 16 MiB partition fetch takes over a hundred writes, each copying
        # the rest. The OS default (autotuned, MiBs on fast links) cuts that to a few.
        "socket.send.buffer.bytes": "-1",
    }
    if endpoint:
        config["rsm.config.s3.endpoint"] = endpoint
    if credentials_file:
        config["rsm.config.s3.credentials.file"] = str(credentials_file)
    return config


def copy_failures(server_log: Path) -> tuple[int, str | None]:
    """Failed segment copies the plugin logged in the broker's current ``server.log``.

    Returns:
        how many, and the last such line (``None`` when there was none).
    """
    try:
        lines = server_log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return 0, None
    failed = [line for line in lines if _COPY_FAILED.search(line)]
    return len(failed), (failed[-1] if failed else None)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)


class S3Proxy:
    """s3proxy on ``127.0.0.1:<port>`` with the filesystem backend under ``<data_dir>/s3``.

    Args:
        data_dir: the stack's data folder.
        port: HTTP port of the S3 endpoint.
        bucket: the bucket created at the first start (with this backend, a folder).
        jar: s3proxy's jar (default: `find_s3proxy_jar`).
        heap: JVM heap of s3proxy.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 9000,
        *,
        bucket: str = DEFAULT_BUCKET,
        jar: Path | None = None,
        heap: str = "256m",
    ) -> None:
        self.home = data_dir.resolve() / "s3"
        self.port = port
        self.bucket = bucket
        self._jar = jar
        self.heap = heap
        self.daemon = Daemon("s3proxy", self.home / "s3proxy.pid", self.home / "s3proxy.log")

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def objects_dir(self) -> Path:
        """The filesystem backend's root: one folder per bucket, one file per object."""
        return self.home / "data"

    @property
    def credentials_file(self) -> Path:
        """The S3 identity and secret as an AWS shared-credentials file (mode 0600)."""
        return self.home / "credentials"

    def pid(self) -> int | None:
        """s3proxy's pid when running."""
        return self.daemon.pid()

    def broker_config(self, plugin_dir: Path | None = None) -> dict[str, str]:
        """The broker properties that tier into this server's bucket."""
        return s3_tier_broker_config(
            bucket=self.bucket,
            endpoint=self.endpoint,
            credentials_file=self.credentials_file,
            plugin_dir=plugin_dir,
        )

    def _credentials(self) -> tuple[str, str]:
        """(identity, secret), generated and saved at the first call."""
        parser = configparser.ConfigParser()
        if self.credentials_file.exists():
            parser.read(self.credentials_file)
            section = parser["default"]
            return section["aws_access_key_id"], section["aws_secret_access_key"]
        identity, secret = "LAKELESS" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30)
        self.home.mkdir(parents=True, exist_ok=True)
        _write_private(
            self.credentials_file,
            f"[default]\naws_access_key_id = {identity}\naws_secret_access_key = {secret}\n",
        )
        return identity, secret

    def start(self, timeout: float = 60.0) -> None:
        """Create the bucket on first use, start s3proxy and wait until it answers HTTP.

        Raises:
            StackError: the port is taken, Java or the jar is missing, or s3proxy died.
        """
        from lakeless.stack._kafka import find_java

        if self.pid() is not None:
            logger.info("s3proxy already running (pid %s) on %s", self.pid(), self.endpoint)
            return
        if not port_is_free(self.port):
            raise StackError(f"port {self.port} for S3 is taken by another process")
        java, jar = find_java(), find_s3proxy_jar(self._jar)
        identity, secret = self._credentials()
        (self.objects_dir / self.bucket).mkdir(parents=True, exist_ok=True)
        conf = self.home / "s3proxy.conf"
        _write_private(
            conf,
            "\n".join(
                [
                    f"s3proxy.endpoint={self.endpoint}",
                    "s3proxy.authorization=aws-v2-or-v4",
                    f"s3proxy.identity={identity}",
                    f"s3proxy.credential={secret}",
                    "jclouds.provider=filesystem",
                    f"jclouds.filesystem.basedir={self.objects_dir}",
                    "",
                ]
            ),
        )
        argv = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-DLOG_LEVEL=warn",  # s3proxy's logback: one line per request at info
            "-jar",
            str(jar),
            "--properties",
            str(conf),
        ]
        started = time.monotonic()
        process = self.daemon.start(argv)
        while not self.answers():
            if process.poll() is not None:
                self.daemon.pid_file.unlink(missing_ok=True)
                raise StackError(
                    f"s3proxy exited with code {process.returncode} while starting:\n"
                    + self.daemon.log_tail()
                )
            if time.monotonic() - started > timeout:
                self.daemon.stop()
                raise StackError(f"s3proxy did not answer on {self.endpoint} within {timeout:.0f}s")
            time.sleep(0.1)
        logger.info(
            "s3proxy up on %s (bucket %s) in %.1fs",
            self.endpoint,
            self.bucket,
            time.monotonic() - started,
        )

    def answers(self) -> bool:
        """Whether the endpoint answers HTTP (any status: without credentials it is 403)."""
        if not port_answers(self.port):
            return False
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("HEAD", f"/{self.bucket}")
            return connection.getresponse().status > 0
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop s3proxy; returns whether it was running."""
        return self.daemon.stop(timeout)
