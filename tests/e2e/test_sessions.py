"""Sessions through jitgate's session gateway, end to end: `kubectl jit exec|attach|
port-forward` reach kwok's pods through the real API server's aggregation layer (front-proxy
certificate, impersonation, the webhook's marker check), are recorded in the webhook's audit
chain, and are cut when their grant ends."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]


def session_records(c: Any, session: str | None = None) -> list[dict[str, Any]]:
    records = [r for r in c.records("webhook") if r["type"].startswith("session.")]
    return [r for r in records if session is None or r.get("session") == session]


def test_exec_through_the_gateway_runs_the_command_and_records_it(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "gw-0")
    grant = c.granted("exec", "gw-0", "--reason", "INC-9: look", name="gw-exec")

    ran = c.jit("alice", "exec", "-n", "prod", "gw-0", "--", "sh", "-c",
                "echo out; echo err >&2; exit 3")  # fmt: skip

    assert (ran.returncode, ran.stdout) == (3, "out\n"), ran.stderr
    assert "err\n" in ran.stderr
    started = [r for r in session_records(c) if r["type"] == "session.started"][-1]
    assert started["actor"]["user"] == "alice"
    assert started["grant"] == grant
    records = session_records(c, started["session"])
    assert [r["type"] for r in records][-1] == "session.ended"
