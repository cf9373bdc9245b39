"""Recorded sessions as the gateway starts them: alice's interactive shell in web-0, her
port-forward to db-0, and `shell(...)` with any of its facts changed."""

from __future__ import annotations

import dataclasses
from typing import Any

from jitgate.core.sessions import SessionStart

SHELL = SessionStart(
    session="3f1c-session",
    kind="exec",
    user="alice",
    groups=("developers",),
    namespace="prod",
    pod="web-0",
    container="app",
    command=("sh",),
    tty=True,
    stdin=True,
    grant="fix-web-0-x7k2",
    request="fix-web-0",
    approvers=("bob",),
    reason="INC-1234: worker stuck",
    width=80,
    height=24,
)


def shell(**changes: Any) -> SessionStart:
    """alice's shell session with `changes` (any SessionStart field)."""
    return dataclasses.replace(SHELL, **changes)


# alice's port-forward to db-0 under the same grant.
FORWARD = shell(
    session="5e2a-forward", kind="portforward", pod="db-0", container=None, command=None,
    tty=False, stdin=False, width=None, height=None,
)  # fmt: skip
