"""`ServerProcess`: run the server as a child process, e.g. in a test or a job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from micro_namedtuple_sqlite_persister.errors import PersisterError, ServerTimeoutError
from micro_namedtuple_sqlite_persister.keys import CurveKeys


class ServerProcess:
    """Starts `python -m micro_namedtuple_sqlite_persister.server` and stops it.

        with ServerProcess("app.db") as server:
            engine = connect(server.address)

    Without `address`, the server listens on an ipc socket in a private temporary
    directory. Extra keyword options become command-line options
    (`lease_timeout=2` -> `--lease-timeout 2`; True -> a bare flag). The server's
    log goes to `log_path` (default: a file beside the socket).

    A server started with `curve_secret_key=...` answers only admitted keys, so
    `curve` must name a client key pair it admits (and the server's public key)
    for the readiness ping; PersisterError otherwise.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        address: str | None = None,
        *,
        start_timeout_s: float = 30.0,
        log_path: str | os.PathLike[str] | None = None,
        curve: CurveKeys | None = None,
        **options: Any,
    ) -> None:
        if options.get("curve_secret_key") and curve is None:
            raise PersisterError(
                "ServerProcess with curve_secret_key needs curve=CurveKeys(client "
                "secret file, server public file) of an admitted client, to ping "
                "the server while it starts."
            )
        if curve is not None:
            curve.load()  # a bad key file fails here, before a process starts
        self.db_path = str(db_path)
        self.curve = curve
        self._tmp = tempfile.TemporaryDirectory(prefix="mnsp-")
        self.address = address or f"ipc://{self._tmp.name}/server.sock"
        self.log_path = Path(log_path or Path(self._tmp.name) / "server.log")
        self.start_timeout_s = start_timeout_s
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not started"
        return self.process.pid

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "micro_namedtuple_sqlite_persister.server"]
        command += [self.db_path, "--bind", self.address]
        for name, value in self.options.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                command.append(flag)
            elif value is not False and value is not None:
                command += [flag, str(value)]
        return command

    def start(self) -> ServerProcess:
        """Start the server and wait until it answers a ping."""
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        from micro_namedtuple_sqlite_persister.client import connect

        deadline = time.monotonic() + self.start_timeout_s
        with connect(self.address, timeout=0.5, curve=self.curve) as probe:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise PersisterError(
                        f"the server exited with code {self.process.returncode} "
                        f"while starting; its log:\n{self.read_log()}"
                    )
                try:
                    probe.ping()
                    return
                except ServerTimeoutError:
                    continue
        self.kill()
        raise ServerTimeoutError(
            f"the server did not answer on {self.address} within "
            f"{self.start_timeout_s} s; its log:\n{self.read_log()}"
        )

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, wait for a clean exit, SIGKILL after `timeout_s`. Exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL the server: no clean-up, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self._tmp.cleanup()
