"""No action without its audit record: while the log cannot be written, nothing happens;
once it can, everything happens.

A record whose write failed is removed from the log before its append reports the failure,
so the retry writes it exactly once.
"""

from __future__ import annotations

import errno
import os

import pytest


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
    assert jit.types() == ["request.created"]


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
    assert jit.types() == [
        "request.created",
        "request.approval",
        "request.approved",
        "grant.created",
    ]
