"""jitgate's webhook and operator as local processes: started with their output in log
files, waited for, and stopped (SIGTERM, then SIGKILL) at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class HttpAnswer:
    """What a health endpoint answered: status 0 and the error when nothing answered."""

    status: int
    body: str


class ProcessExited(RuntimeError):
    """A process the tier needs ended while it was being waited for."""


@dataclass
class LocalProcess:
    """One child process; everything it prints goes to ``log_file``."""

    name: str
    argv: list[str]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(("$ " + " ".join(self.argv) + "\n").encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # its own process group: teardown stops it whole
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ProcessExited(
                f"{self.name} exited with {self.process.returncode}; "
                f"log {self.log_file}:\n{self.tail()}"
            )

    def tail(self, lines: int = 80, since: int = 0) -> str:
        """The last ``lines`` lines of the log, from byte offset ``since`` on."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(since)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_size(self) -> int:
        try:
            return self.log_file.stat().st_size
        except FileNotFoundError:
            return 0

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        return process.returncode


def wait_until(
    what: str,
    check: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    interval: float = 0.2,
    alive: Sequence[LocalProcess] = (),
) -> None:
    """Call ``check`` until it returns (True, _); TimeoutError with its last word otherwise.

    Used only where nothing can be watched: a process's health endpoint while it starts,
    and an admission configuration the API server picks up through its informers.
    """
    deadline = time.monotonic() + timeout
    last = "never checked"
    while True:
        for process in alive:
            process.check_alive()
        ok, last = check()
        if ok:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f} s: {last}")
        time.sleep(interval)


def https_get(url: str, ca_file: Path, timeout: float = 2.0) -> HttpAnswer:
    """A GET over HTTPS, the server checked against ``ca_file``."""
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return HttpAnswer(response.status, response.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, error.read().decode(errors="replace"))
    except (OSError, urllib.error.URLError) as error:
        return HttpAnswer(0, repr(error))


def http_get(url: str, timeout: float = 2.0) -> HttpAnswer:
    """A plain-HTTP GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return HttpAnswer(response.status, response.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, error.read().decode(errors="replace"))
    except (OSError, urllib.error.URLError) as error:
        return HttpAnswer(0, repr(error))
