"""A Mosquitto MQTT broker on loopback, with persistence so QoS 1 messages survive restarts.

Secured (``security`` given), its one listener speaks TLS with the stack's certificate and
accepts only the users of its password file (see `lakeless.stack._security`).
"""

from __future__ import annotations

import getpass
import logging
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from lakeless.errors import StackError
from lakeless.stack._process import Daemon, port_answers, port_is_free

if TYPE_CHECKING:
    from lakeless.stack._security import StackSecurity

logger = logging.getLogger(__name__)


def find_mosquitto() -> str:
    """The ``mosquitto`` executable (Debian puts it in /usr/sbin).

    Raises:
        StackError: Mosquitto is not installed.
    """
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise StackError("Mosquitto is missing: run `make setup` (installs Debian's mosquitto)")
    return found


class MosquittoBroker:
    """Mosquitto listening on ``127.0.0.1:<mqtt_port>``, data in ``<data_dir>/mosquitto``.

    Args:
        data_dir: the stack's data folder.
        mqtt_port: the listener's port.
        security: TLS, password and ACL files of a secured stack; ``None``: anonymous MQTT.
    """

    def __init__(
        self, data_dir: Path, mqtt_port: int = 1883, *, security: StackSecurity | None = None
    ) -> None:
        self.home = data_dir.resolve() / "mosquitto"
        self.mqtt_port = mqtt_port
        self.security = security
        self.daemon = Daemon("mqtt", self.home / "mosquitto.pid", self.home / "stdout.log")

    @property
    def url(self) -> str:
        """``mqtt://host:port`` (``mqtts://`` when secured)."""
        scheme = "mqtts" if self.security else "mqtt"
        return f"{scheme}://127.0.0.1:{self.mqtt_port}"

    def pid(self) -> int | None:
        """Mosquitto's pid when running."""
        return self.daemon.pid()

    def start(self, timeout: float = 15.0) -> None:
        """Start Mosquitto and wait until it accepts connections.

        Raises:
            StackError: the port is taken, Mosquitto is missing, or it died while starting.
        """
        if self.pid() is not None:
            logger.info("mosquitto already running (pid %s) on %s", self.pid(), self.url)
            return
        if not port_is_free(self.mqtt_port):
            raise StackError(f"port {self.mqtt_port} for MQTT is taken by another process")
        binary = find_mosquitto()
        self.home.mkdir(parents=True, exist_ok=True)
        config = (resources.files("lakeless.stack") / "templates" / "mosquitto.conf").read_text()
        conf_file = self.home / "mosquitto.conf"
        security = (
            self.security.mosquitto_config(self.home) if self.security else "allow_anonymous true"
        )
        conf_file.write_text(
            config.format(
                mqtt_port=self.mqtt_port,
                security=security,
                persistence_dir=self.home,
                log_file=self.home / "mosquitto.log",
                user=getpass.getuser(),
            )
        )
        process = self.daemon.start([binary, "-c", str(conf_file)])
        deadline = time.monotonic() + timeout
        while not port_answers(self.mqtt_port):
            if process.poll() is not None:
                self.daemon.pid_file.unlink(missing_ok=True)
                raise StackError(
                    f"Mosquitto exited with code {process.returncode} while starting:\n"
                    + self.daemon.log_tail()
                    + Daemon("mqtt", self.daemon.pid_file, self.home / "mosquitto.log").log_tail()
                )
            if time.monotonic() > deadline:
                self.daemon.stop()
                raise StackError(f"Mosquitto did not accept connections within {timeout:.0f}s")
            time.sleep(0.05)
        logger.info("mosquitto up on %s", self.url)

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop Mosquitto (SIGTERM makes it save its persistence file)."""
        return self.daemon.stop(timeout)
