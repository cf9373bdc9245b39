"""No action without its audit record: while the log cannot be written, nothing happens;
once it can, everything happens.

A record whose fsync failed can still be in the file (written, just not known durable) while
its append was reported failed, so the retry may write it a second time: the log then holds
it twice, never not at all. Hence the de-duplicated comparisons below.
"""

from __future__ import annotations

import errno
import os

import pytest


def distinct(types: list[str]) -> list[str]:
    return list(dict.fromkeys(types))


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Make the audit log's fsync fail (EIO) until `disk.heal()`."""

    class Disk:
        broken = False

        def break_(self) -> None:
            self.broken = True

        def heal(self) -> None:
            self.broken = False

    state = Disk()
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        if state.broken:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return state


async def test_nothing_is_decided_while_the_audit_log_fails(jit, disk) -> None:
    jit.policy()
    async with jit.running():
        disk.break_()
        jit.request("fix-web-0")
        await jit.settle()
        assert jit.phase("fix-web-0") is None
        disk.heal()
        await jit.until_phase("fix-web-0", "Pending")
    assert distinct(jit.types()) == ["request.created"]


async def test_no_grant_is_issued_while_the_audit_log_fails(jit, disk) -> None:
    jit.policy()
    async with jit.running():
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        disk.break_()
        jit.approve("fix-web-0", "bob")
        await jit.settle()
        assert jit.phase("fix-web-0") == "Pending"
        assert jit.grants() == []
        disk.heal()
        await jit.until_phase("fix-web-0", "Approved")
        assert len(jit.grants()) == 1
    assert distinct(jit.types()) == [
        "request.created",
        "request.approval",
        "request.approved",
        "grant.created",
    ]
