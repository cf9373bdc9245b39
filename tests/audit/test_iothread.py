"""The file backend's thread: calls run in order, off the loop, and their outcome comes back."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jitgate.audit.iothread import IoThread


async def test_calls_run_in_call_order_on_one_thread_that_is_not_the_loops() -> None:
    io = IoThread("test-io")
    seen: list[tuple[int, str]] = []

    def note(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 2

    try:
        results = await asyncio.gather(*(io.run(note, i) for i in range(20)))
    finally:
        io.shutdown()
    assert results == [i * 2 for i in range(20)]
    assert seen == [(i, "test-io") for i in range(20)]


async def test_a_failing_call_raises_its_own_error_and_the_next_call_still_runs() -> None:
    io = IoThread("test-io")

    def fail() -> None:
        raise OSError(5, "Input/output error")

    try:
        with pytest.raises(OSError, match="Input/output error"):
            await io.run(fail)
        assert await io.run(len, "four") == 4
    finally:
        io.shutdown()


async def test_a_caller_that_gives_up_leaves_the_call_to_finish_and_the_thread_working() -> None:
    io = IoThread("test-io")
    release = threading.Event()
    finished = threading.Event()

    def slow() -> None:
        release.wait(10)
        finished.set()

    try:
        waiting = asyncio.ensure_future(io.run(slow))
        await asyncio.sleep(0)
        waiting.cancel()
        release.set()
        assert await io.run(finished.is_set)  # run after `slow`, which did finish
    finally:
        io.shutdown()


async def test_shutdown_lets_queued_calls_finish() -> None:
    io = IoThread("test-io")
    done: list[int] = []
    futures = [io.run(done.append, i) for i in range(5)]
    io.shutdown()
    assert done == list(range(5))
    await asyncio.gather(*futures)


async def test_run_then_hands_each_outcome_to_its_callback_on_the_loop_in_call_order() -> None:
    io = IoThread("test-io")
    loop_thread = threading.current_thread()
    outcomes: list[tuple[object, str | None, bool]] = []
    all_in = asyncio.get_running_loop().create_future()

    def then(result: object, error: BaseException | None) -> None:
        outcomes.append(
            (result, str(error) if error else None, threading.current_thread() is loop_thread)
        )
        if len(outcomes) == 3:
            all_in.set_result(None)

    def fail() -> None:
        raise OSError(28, "No space left on device")

    try:
        io.run_then(then, len, "four")
        io.run_then(then, fail)
        io.run_then(then, len, "six!!!")
        await asyncio.wait_for(all_in, 10)
    finally:
        io.shutdown()
    assert outcomes == [
        (4, None, True),
        (None, "[Errno 28] No space left on device", True),
        (6, None, True),
    ]
