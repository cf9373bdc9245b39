"""One thread for a backend's blocking file work, in call order: fsyncs never queue behind
other users of the default executor.

Not a `ThreadPoolExecutor` with one worker: its `run_in_executor` round trip chains a
`concurrent.futures.Future` to an asyncio one and takes the pool's idle semaphore on both
sides, ~15 us of CPU per call on top of the hand-off itself (55 vs 40 us measured, one call
at a time on uvloop). The file sink makes one call per batch, so at the low concurrency of a
real API server (one review in flight) that is one call per record. Here the thread takes a
job off a queue and hands its outcome back with one `call_soon_threadsafe`: to the caller's
future (`run`), or straight to a callback (`run_then`), which then runs one event-loop turn
before a task awaiting a future would.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Where a call's outcome goes: its caller's future, or a callback given (result, error).
_Then = Callable[[Any, BaseException | None], None]
_Job = tuple[
    asyncio.AbstractEventLoop, "asyncio.Future[Any] | _Then", Callable[..., Any], tuple[Any, ...]
]


class IoThread:
    """Runs blocking calls one at a time on a thread of its own, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`function(*args)` on the thread, after every call made before it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start()
        self._jobs.put((loop, future, function, args))
        return future

    def _start(self) -> None:
        if self._thread is None:
            # A daemon: at interpreter exit nothing waits for a call nobody can await any
            # more (a record is acknowledged only by its caller, after its fsync returned).
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()

    def run_then(
        self,
        then: Callable[[T | None, BaseException | None], None],
        function: Callable[..., T],
        *args: Any,
    ) -> None:
        """`function(*args)` on the thread, after every call made before it; then
        `then(result, None)` or `then(None, error)` on the calling event loop, as the very
        callback that hands the outcome over (no future: one event-loop turn sooner)."""
        loop = asyncio.get_running_loop()
        self._start()
        self._jobs.put((loop, then, function, args))

    def shutdown(self) -> None:
        """Let the calls queued finish, then end the thread (blocks until it has)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            _run(*job)
            del job  # nothing of a finished call stays alive while the thread waits


def _run(
    loop: asyncio.AbstractEventLoop,
    outcome: asyncio.Future[Any] | _Then,
    function: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    try:
        result = function(*args)
    except BaseException as error:  # handed to the caller, whatever it is
        _tell(loop, outcome, None, error)
    else:
        _tell(loop, outcome, result, None)


def _tell(
    loop: asyncio.AbstractEventLoop,
    outcome: asyncio.Future[Any] | _Then,
    result: object,
    error: BaseException | None,
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        if isinstance(outcome, asyncio.Future):
            loop.call_soon_threadsafe(_settle, outcome, result, error)
        else:
            loop.call_soon_threadsafe(outcome, result, error)


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.cancelled():  # its caller gave up; the call itself has run
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
