"""kubectl's long-lived connections, driven from a test: ``exec -it`` in a pseudo-terminal,
``port-forward`` until it says which local port it listens on, ``attach`` until it printed
what is awaited.

Every read has a deadline (``select``), so a stream that stays silent fails the test with
what it printed instead of hanging it; every process is stopped when its block ends.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

TIMEOUT_S = 30.0
ROWS, COLUMNS = 24, 80


@dataclass
class Stream:
    """A running kubectl and the file descriptor its output is read from."""

    process: subprocess.Popen[bytes]
    fd: int
    output: bytearray = field(default_factory=bytearray)
    closed: bool = False  # the output reached its end

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def _read(self, deadline: float) -> bool:
        """Read what is there (waiting until ``deadline``); False at the end of the output."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError as error:  # a pseudo-terminal whose other side closed
            if error.errno != errno.EIO:
                raise
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.output += chunk
        return True

    def expect(self, pattern: str, timeout: float = TIMEOUT_S) -> re.Match[str]:
        """Read until the output matches the regular expression ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text)
            if found:
                return found
            if self.closed or time.monotonic() >= deadline:
                state = "ended" if self.closed else f"still running after {timeout:.0f} s"
                raise AssertionError(
                    f"kubectl {state} without printing {pattern!r}; it printed:\n{self.text}"
                )
            self._read(deadline)

    def finish(self, timeout: float = TIMEOUT_S) -> int:
        """Read to the end of the output; kubectl's exit code."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read(deadline)
        return self.process.wait(max(0.1, deadline - time.monotonic()))

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@dataclass
class Terminal(Stream):
    """kubectl with a pseudo-terminal for stdin, stdout and stderr, as a user's shell."""

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())


@contextlib.contextmanager
def in_terminal(argv: Sequence[str], env: dict[str, str]) -> Iterator[Terminal]:
    """Run ``argv`` (``kubectl exec -it …``) in a new pseudo-terminal of 24x80."""
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    try:
        process = subprocess.Popen(
            argv, stdin=side, stdout=side, stderr=side, env=env, start_new_session=True
        )
    except BaseException:
        os.close(main)
        raise
    finally:
        os.close(side)  # kubectl holds it now; the test reads and writes the other end
    terminal = Terminal(process, main)
    try:
        yield terminal
    finally:
        terminal.stop()
        os.close(main)


@contextlib.contextmanager
def streaming(argv: Sequence[str], env: dict[str, str]) -> Iterator[Stream]:
    """Run ``argv`` (``kubectl attach``, ``port-forward``…) with its stdout read by the test
    and its stderr with it (``2>&1``)."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    assert process.stdout is not None
    stream = Stream(process, process.stdout.fileno())
    try:
        yield stream
    finally:
        stream.stop()
        process.stdout.close()


@contextlib.contextmanager
def port_forward(argv: Sequence[str], env: dict[str, str]) -> Iterator[tuple[Stream, int]]:
    """``kubectl port-forward … :PORT``: the stream and the local port it listens on."""
    with streaming(argv, env) as stream:
        forwarding = stream.expect(r"Forwarding from 127\.0\.0\.1:(\d+) -> ")
        yield stream, int(forwarding.group(1))


def assert_new_lines(c: Any, attached: Stream) -> None:
    """``kubectl attach`` prints what the pod prints from now on. Nothing says when kwok
    starts to follow the pod's output, so lines are printed until one arrives (at most 50)."""
    for line in range(1, 51):
        c.node.container_prints(f"attached line {line}")
        try:
            attached.expect(r"attached line \d+\n", timeout=0.5)
            return
        except AssertionError:
            if attached.closed:
                raise
    raise AssertionError(f"kubectl attach printed none of 50 lines:\n{attached.text}")
