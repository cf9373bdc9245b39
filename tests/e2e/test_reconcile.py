"""`jitgate audit reconcile` against the real kube-apiserver's audit log (--audit-log-path,
tests/apiserver/harness.py's AUDIT_POLICY): an admitted exec names its jitgate record in the
API server's event; a record forged into jitgate's log and an exec let through while jitgate
was bypassed are each named."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from typing import Any

import pytest
from e2e.cluster import wait_effective

from jitgate.audit import Action, Actor, AuditEvent, load_key, open_audit_writer

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

HOOK = "connect.actions.jitgate.dev"


def apiserver_events(c: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in c.api.audit_log.read_text().splitlines() if line]


def await_event(c: Any, matches: Any, what: str) -> dict[str, Any]:
    """The API server writes its audit event once the request completes: wait for it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [e for e in apiserver_events(c) if e.get("stage") == "ResponseComplete"]
        found = [e for e in found if matches(e)]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"the API server's audit log has no event for {what}")


def reconcile(c: Any, *args: str) -> Any:
    return c.audit("webhook", "reconcile", "--apiserver-audit", str(c.api.audit_log), *args)


def forge_record(c: Any) -> None:
    """Someone with the webhook's volume and HMAC key writes an allow nobody asked for."""

    async def write() -> None:
        async with open_audit_writer(
            c.audit_url("webhook"),
            writer_id="webhook-forged",
            key=load_key(c.audit_key),
            maintenance_interval=None,
        ) as writer:
            await writer.append(
                AuditEvent(
                    type="action.allowed",
                    actor=Actor(user="mallory", groups=("developers",)),
                    namespace="prod",
                    action=Action(verb="exec", resource="pods", name="recon-0"),
                    grant="none",
                    request="none",
                    admissionUID="00000000-0000-4000-8000-00000000beef",
                    dryRun=False,
                )
            )

    asyncio.run(write())


def test_reconcile_matches_the_api_servers_log_and_names_forgery_and_bypass(
    jitgate_cluster: Any,
) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "recon-0")
    c.granted("exec", "recon-0", "--reason", "INC-77: reconcile", name="recon")
    ran = c.exec("alice", "prod", "recon-0", "echo", "reconciled")
    assert ran.returncode == 0, ran.stderr

    # The API server's own event of the exec names the record that allowed it.
    told = await_event(
        c,
        lambda e: (
            (e.get("objectRef") or {}).get("name") == "recon-0"
            and f"{HOOK}/seq" in (e.get("annotations") or {})
        ),
        "the admitted exec",
    )
    annotations = told["annotations"]
    assert told["user"]["username"] == "alice"
    (record,) = [
        r
        for r in c.records(
            "webhook", "--type", "action.allowed", "--grant", annotations[f"{HOOK}/grant"]
        )
        if r["seq"] == int(annotations[f"{HOOK}/seq"])
    ]
    assert record["writer"] == annotations[f"{HOOK}/writer"]
    assert annotations[f"{HOOK}/request"] == "recon"
    assert annotations[f"{HOOK}/leaf"].startswith("sha256:")
    agreed = reconcile(c, "-n", "prod")
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert agreed.stdout.startswith("The logs agree: "), agreed.stdout

    # An allow forged into jitgate's log: no API server event names it.
    forge_record(c)
    try:
        bypass_and_reconcile(c, record)
    finally:  # the tier's later tests verify the webhook's log with the public key
        shutil.rmtree(c.webhook_audit / "webhook-forged")


def bypass_and_reconcile(c: Any, record: dict[str, Any]) -> None:
    # jitgate bypassed: an admin takes prod out of the connect webhook's reach, and alice's
    # exec (her grant aside, any exec would do) goes through with no review and no record.
    configurations = json.loads(
        c.ok("admin", "get", "validatingwebhookconfigurations", "-o", "json")
    )
    (configuration,) = [
        item for item in configurations["items"]
        if any(hook["name"] == HOOK for hook in item["webhooks"])
    ]  # fmt: skip
    index = [hook["name"] for hook in configuration["webhooks"]].index(HOOK)
    nowhere = {"matchLabels": {"jitgate.test/nowhere": "true"}}
    patch = [{"op": "replace", "path": f"/webhooks/{index}/namespaceSelector", "value": nowhere}]
    name = configuration["metadata"]["name"]
    try:
        c.ok("admin", "patch", "validatingwebhookconfiguration", name, "--type=json",
             "-p", json.dumps(patch))  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the configuration reaches the API server's informer
            bypassed = c.exec("alice", "prod", "recon-0", "echo", "bypassed")
            if bypassed.returncode == 0:
                break
            time.sleep(0.3)
        assert bypassed.returncode == 0, bypassed.stderr
    finally:
        restore = [{"op": "replace", "path": f"/webhooks/{index}/namespaceSelector",
                    "value": configuration["webhooks"][index]["namespaceSelector"]}]  # fmt: skip
        c.ok("admin", "patch", "validatingwebhookconfiguration", name, "--type=json",
             "-p", json.dumps(restore))  # fmt: skip
        wait_effective(c)
    await_event(
        c,
        lambda e: (
            (e.get("user") or {}).get("username") == "alice"
            and (e.get("objectRef") or {}).get("name") == "recon-0"
            and f"{HOOK}/seq" not in (e.get("annotations") or {})
        ),
        "the bypassing exec",
    )

    found = reconcile(c, "-n", "prod")
    assert found.returncode == 1, found.stdout + found.stderr
    lines = found.stdout.splitlines()
    assert any(
        line.startswith("UNRECORDED  ") and " alice " in line and "pods/exec prod/recon-0" in line
        and line.endswith("allowed by the API server, and no jitgate record answers for it")
        for line in lines
    ), lines  # fmt: skip
    assert any(
        line.startswith("UNHEARD     webhook-forged:1 ") and " mallory exec prod/recon-0: " in line
        for line in lines
    ), lines
    assert not [line for line in lines if f"{record['writer']}:{record['seq']} " in line]
    assert lines[-1].startswith("The logs DISAGREE: 2 finding(s)"), lines
