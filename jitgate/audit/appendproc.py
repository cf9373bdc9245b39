"""A file sink's appends made durable by a process of its own: no thread shares the GIL.

The file sink used to write and fsync each batch on a thread. That thread needs the GIL
after every system call (woken from its queue, after the write, after the fsync, after the
HEAD write), and a busy event loop holds it: every time the loop let go of the GIL (each TLS
read and write does) it woke the waiting thread, usually only for the loop to take the GIL
back first. On the webhook under load that was ~6% of the event loop's time in futex wake-ups
alone and a fifth of its throughput (`make bench`: 0.7x the baseline with the thread, ~0.9x
appending on the loop itself without an fsync).

Here a child process (`appendchild`, run by `python -I` as a script) does the blocking part
of an append (of a batch of two records or more: `filesink.PROCESS_BATCH`): it writes the
batch to the segment, `fdatasync`s it, writes the HEAD witness and answers. The event loop
only sends the batch over a Unix socket and reads the answer when it comes (`Appender`); it
never touches the file, so a hung volume stalls appends, never the loop. The child holds the
writer's lock file with its parent (the same open file, passed down): a writer restarted
while an old child is still stuck in an fsync finds the log locked, as it must, rather than
two processes appending to one chain. It ends when its socket closes, so also when its
parent is killed.

What goes over the socket is `appendchild`'s to say (`FRAME`, `ANSWER`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Final

from jitgate.audit import appendchild
from jitgate.audit.appendchild import ANSWER, FRAME

# How long a closing writer waits for its child to see the socket close and exit.
_EXIT_WAIT: Final = 5.0

# What the child's answer is handed to, in the order the batches were sent.
Then = Callable[[OSError | None], None]


class Appender(asyncio.Protocol):
    """The parent's end: batches sent, answers handed to their callbacks in order."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._answers = bytearray()
        self._waiting: collections.deque[Then] = collections.deque()
        self._path: bytes | None = None  # the segment the child has open
        self._process: asyncio.subprocess.Process | None = None
        self.ended: OSError | None = None

    @classmethod
    async def start(cls, head_fd: int, lock_fd: int) -> Appender:
        """A child appending for a writer whose HEAD and lock files are these."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-I", appendchild.__file__, str(theirs.fileno()), str(head_fd),
                str(lock_fd),
                pass_fds=(theirs.fileno(), head_fd, lock_fd),
                stdin=subprocess.DEVNULL,
                # Out of the terminal's process group: a Ctrl-C is for the writer, which
                # drains its appends through this process before closing it.
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        appender = cls()
        appender._process = process
        try:
            await loop.create_unix_connection(lambda: appender, sock=ours)
        except BaseException:
            ours.close()
            await appender.aclose()  # the child sees its socket closed and ends
            raise
        return appender

    @property
    def running(self) -> bool:
        return self._transport is not None and self.ended is None

    def forget_segment(self) -> None:
        """Name the segment again with the next batch (after a failed write or a seal)."""
        self._path = None

    def append(self, path: bytes, data: bytes, witness: bytes, then: Then) -> None:
        """Have `data` appended to the segment at `path` and made durable, then `witness`
        written to HEAD; `then(None)` once it is, `then(error)` if not, on the event loop."""
        transport = self._transport
        if transport is None or self.ended is not None:
            then(self.ended or _ended())
            return
        named = b"" if path == self._path else path
        self._path = path
        self._waiting.append(then)
        transport.write(FRAME.pack(len(named), len(data), len(witness)) + named + data + witness)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        answers = self._answers
        answers += data
        while len(answers) >= ANSWER.size:
            code, length = ANSWER.unpack_from(answers)
            end = ANSWER.size + length
            if len(answers) < end:
                return
            message = answers[ANSWER.size : end].decode(errors="replace")
            del answers[:end]
            if code != 0:
                self._path = None  # the child closed it: name it again
            _tell(self._waiting.popleft(), OSError(code, message) if code else None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = _ended()
        waiting, self._waiting = self._waiting, collections.deque()
        for then in waiting:
            _tell(then, self.ended)

    async def aclose(self) -> None:
        """Close the socket and wait for the child to end (killed if it does not)."""
        if self._transport is not None:
            self._transport.close()
        process = self._process
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), _EXIT_WAIT)
        except TimeoutError:
            # Stuck in a write or fsync on a hung volume: killed, which takes effect once
            # that system call returns (as a thread stuck there would hold up the close).
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _tell(then: Then, error: OSError | None) -> None:
    """`then(error)`; a callback that raises is reported as one the event loop called, and
    the answers after it still reach theirs."""
    try:
        then(error)
    except Exception as failure:
        asyncio.get_running_loop().call_exception_handler(
            {"message": "an audit append's callback failed", "exception": failure}
        )


def _ended() -> OSError:
    return OSError(errno.EPIPE, "the audit log's append process has ended")
