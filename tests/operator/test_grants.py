"""Grants end to end: issue on approval, expire at expiresAt, revoke, survive restarts."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import kopf
from jitgate.operator.kube import KubeApi
from jitgate.operator.metrics import Metrics
from jitgate.operator.workflow import Workflow
from kopf._core.engines.posting import settings_var
from support import objects

from jitgate.audit import open_audit_writer
from jitgate.core.clock import parse_time
from jitgate.kube import load_credentials

GRANTS = "jitgate.dev/v1alpha1/grants"


async def approved(jit: Any, name: str = "fix-web-0", **spec: Any) -> dict[str, Any]:
    jit.request(name, **spec)
    await jit.until_phase(name, "Pending")
    jit.approve(name, "bob")
    await jit.until_phase(name, "Approved")
    return jit.grant_of(name)


async def test_approval_issues_a_grant_for_exactly_the_request(jit) -> None:
    jit.policy()
    async with jit.running():
        jit.request(
            "fix-web-0",
            duration="30m",
            actions=[{"verb": "exec", "names": ["web-0"], "container": "app"}],
        )
        obj = await jit.until_phase("fix-web-0", "Pending")
        approved_at = jit.clock.advance(dt.timedelta(minutes=3))
        jit.approve("fix-web-0", "bob", comment="go ahead")
        obj = await jit.until_phase("fix-web-0", "Approved")
        grant = jit.grant_of("fix-web-0")
        await jit.until(lambda: jit.grant_of("fix-web-0").get("status", {}).get("phase"))
        grant = jit.grant_of("fix-web-0")
        await jit.until(
            lambda: any(
                reason == "Approved" and "is live until" in message
                for reason, message in jit.events("fix-web-0")
            )
        )
    spec = grant["spec"]
    assert spec["user"] == "alice"
    assert spec["actions"] == [{"verb": "exec", "names": ["web-0"], "container": "app"}]
    assert parse_time(spec["notBefore"]) == approved_at
    assert parse_time(spec["expiresAt"]) == approved_at + dt.timedelta(minutes=30)
    assert spec["accessRequest"] == {"name": "fix-web-0", "uid": obj["metadata"]["uid"]}
    assert spec["policy"] == "production"
    assert [a["user"] for a in spec["approvals"]] == ["bob"]
    assert spec["breakGlass"] is False
    assert spec["reason"] == objects.REASON  # so every use is audited with why it was asked
    assert grant["status"]["phase"] == "Active"
    (owner,) = grant["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "jitgate.dev/v1alpha1",
        "kind": "AccessRequest",
        "name": "fix-web-0",
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert obj["status"]["grant"] == {
        "name": grant["metadata"]["name"],
        "expiresAt": spec["expiresAt"],
    }
    created = [r for r in jit.records() if r["type"] == "grant.created"]
    assert len(created) == 1
    assert created[0]["grant"] == grant["metadata"]["name"]
    assert created[0]["context"]["expiresAt"] == spec["expiresAt"]


async def test_the_grant_is_deleted_at_expiry_and_the_request_expires(jit) -> None:
    jit.policy()
    async with jit.running():
        grant = await approved(jit, duration="15m")
        name = grant["metadata"]["name"]
        jit.clock.advance(dt.timedelta(minutes=14, seconds=59))
        jit.approve("fix-web-0", "carol")  # a change to look at; the grant must stay
        await jit.until(lambda: jit.get("fix-web-0")["status"].get("observedApprovals") == 1)
        assert jit.find(name, GRANTS) is not None
        jit.clock.advance(dt.timedelta(seconds=1))
        obj = await jit.until_phase("fix-web-0", "Expired")
        await jit.until(lambda: jit.find(name, GRANTS) is None)
    granted = next(c for c in obj["status"]["conditions"] if c["type"] == "Granted")
    assert (granted["status"], granted["reason"]) == ("False", "GrantExpired")
    records = jit.records()
    assert [r["type"] for r in records] == [
        "request.created",
        "request.approval",
        "request.approved",
        "grant.created",
        "grant.expired",
        "request.expired",
    ]
    assert records[-2]["grant"] == name
    assert records[-2]["context"]["lagSeconds"] >= 0


async def test_deleting_the_grant_revokes_the_request(jit) -> None:
    jit.policy()
    async with jit.running():
        grant = await approved(jit)
        jit.delete(grant["metadata"]["name"], GRANTS)
        obj = await jit.until_phase("fix-web-0", "Revoked")
        await jit.until(lambda: jit.find(grant["metadata"]["name"], GRANTS) is None)
    assert (
        obj["status"]["message"]
        == f"grant {grant['metadata']['name']} revoked: the Grant was deleted"
    )
    assert jit.types()[-1] == "grant.revoked"
    assert jit.types().count("grant.revoked") == 1


async def test_the_revoke_annotation_revokes_as_the_stamped_user(jit) -> None:
    jit.policy()
    async with jit.running():
        grant = await approved(jit)
        jit.annotate("fix-web-0", {"jitgate.dev/revoke": "true", "jitgate.dev/revoked-by": "bob",
                                   "jitgate.dev/revoke-reason": "INC-9 closed"})  # fmt: skip
        obj = await jit.until_phase("fix-web-0", "Revoked")
        await jit.until(lambda: jit.find(grant["metadata"]["name"], GRANTS) is None)
    # The reason typed with `kubectl jit revoke --reason` is on the request and in the record.
    assert obj["status"]["message"].endswith("revoked by bob: INC-9 closed")
    revoked = [r for r in jit.records() if r["type"] == "grant.revoked"]
    assert len(revoked) == 1
    assert (revoked[0]["actor"]["user"], revoked[0]["reason"]) == (
        "bob", "revoked by bob: INC-9 closed"
    )  # fmt: skip


async def test_deleting_the_request_revokes_its_grant(jit) -> None:
    jit.policy()
    async with jit.running():
        grant = await approved(jit)
        jit.delete("fix-web-0")
        await jit.until(lambda: jit.find("fix-web-0") is None)
        await jit.until(lambda: jit.find(grant["metadata"]["name"], GRANTS) is None)
        await jit.until(lambda: "grant.revoked" in jit.types())
    revoked = next(r for r in jit.records() if r["type"] == "grant.revoked")
    assert revoked["reason"] == "revoked: its AccessRequest was deleted"
    assert jit.types().count("grant.revoked") == 1


async def test_a_grant_past_expiry_is_reaped_when_the_operator_restarts(jit) -> None:
    jit.policy()
    async with jit.running():
        grant = await approved(jit, duration="10m")
    name = grant["metadata"]["name"]
    # Down for the whole rest of the TTL: nothing deletes the grant meanwhile.
    jit.clock.advance(dt.timedelta(minutes=25))
    assert jit.find(name, GRANTS) is not None
    async with jit.running():
        await jit.until(lambda: jit.find(name, GRANTS) is None)
        await jit.until_phase("fix-web-0", "Expired")
    expired = next(r for r in jit.records() if r["type"] == "grant.expired")
    assert expired["context"]["lagSeconds"] == 15 * 60
    assert jit.types()[-2:] == ["grant.expired", "request.expired"]


async def test_timers_are_rearmed_for_live_grants_after_a_restart(jit) -> None:
    jit.policy()
    async with jit.running():
        first = await approved(jit, "first", duration="10m")
        second = await approved(jit, "second", duration="30m")
    jit.clock.advance(dt.timedelta(minutes=5))
    async with jit.running():
        await jit.until(lambda: "grant.created" in jit.types())  # the log is readable
        assert jit.find(first["metadata"]["name"], GRANTS) is not None
        jit.clock.advance(dt.timedelta(minutes=6))
        await jit.until_phase("first", "Expired")
        assert jit.phase("second") == "Approved"
        jit.clock.advance(dt.timedelta(minutes=20))
        await jit.until_phase("second", "Expired")
        await jit.until(lambda: jit.find(second["metadata"]["name"], GRANTS) is None)
    assert jit.types().count("grant.expired") == 2
    assert jit.types().count("request.created") == 2  # nothing was recorded twice


async def test_a_grant_whose_request_goes_while_it_ends_is_ended_cleanly(jit) -> None:
    # The namespace controller emptying a namespace deletes a Grant and its AccessRequest
    # together: the request can go between the operator reading it and telling it the
    # grant ended. The end is recorded all the same, and nothing fails and retries.
    jit.policy()
    async with jit.running():
        grant = await approved(jit)
    body = jit.get(grant["metadata"]["name"], GRANTS)

    class RequestGoesOnceRead(KubeApi):
        async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
            found = await super().get(plural, namespace, name)
            if plural == "accessrequests":
                # Gone just after this read, finalizer and all (its own handler ran).
                jit.api.patch_object(
                    "jitgate.dev/v1alpha1/accessrequests", namespace, name,
                    {"metadata": {"finalizers": []}},
                )  # fmt: skip
                jit.delete(name)
            return found

    kube = RequestGoesOnceRead(await asyncio.to_thread(load_credentials, jit.config.kubeconfig))
    # Outside a running operator kopf has no settings to post Events with: posting off.
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings_var.set(settings)
    try:
        async with open_audit_writer(
            jit.audit_url, writer_id=jit.config.writer, clock=jit.clock
        ) as audit:
            workflow = Workflow(
                config=jit.config, clock=jit.clock, kube=kube, audit=audit, metrics=Metrics(),
                notifier=None,
            )  # fmt: skip
            await workflow.end(body, "Revoked", reason=None, delete=False)
    finally:
        await kube.close()
    assert jit.find("fix-web-0") is None
    [revoked] = [r for r in jit.records() if r["type"] == "grant.revoked"]
    assert revoked["grant"] == grant["metadata"]["name"]
