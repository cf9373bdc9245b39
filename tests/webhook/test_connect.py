"""exec, attach and port-forward: CONNECT reviews decided against live grants, over HTTPS."""

from __future__ import annotations

import datetime as dt
from typing import Any

from support.admission import add_grant

from jitgate.audit.tlog import record_leaf
from jitgate.core.canonical import digest

GRANTS = "grants.jitgate.dev"
HINT = 'kubectl jit request exec web-0 -n prod -c app --for 15m --reason "<why>" -- ls'


async def test_exec_without_a_grant_is_denied_with_the_request_command(
    webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    review = reviews.exec(command=["ls"])
    answer = await validate(review)
    assert not answer.allowed
    assert answer.response["status"]["reason"] == "Forbidden"
    assert answer.message == (
        "jitgate denied exec into pod web-0 in namespace prod (container app, command ls): "
        "alice holds no live grant for it. AccessPolicy production requires an approved grant "
        f"for it; ask with: {HINT}"
    )
    [record] = audit_log()
    assert record["type"] == "action.denied"
    assert record["admissionUID"] == review["request"]["uid"]
    assert record["actor"] == {"user": "alice", "groups": ["system:authenticated"]}
    assert record["namespace"] == "prod"
    assert record["action"] == {
        "verb": "exec",
        "resource": "pods",
        "name": "web-0",
        "subresource": "exec",
        "container": "app",
        "command": ["ls"],
        "stdin": False,
        "tty": False,
    }
    assert record["reason"].startswith("NoLiveGrant: ")
    assert record["dryRun"] is False


async def test_a_denial_that_break_glass_would_overcome_says_so(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    glass = {"users": ["carol"], "maxDuration": "10m"}
    cluster.patch("accesspolicies.jitgate.dev", None, "production", {"spec": {"breakGlass": glass}})
    await reviews.until(
        webhook, lambda cache: cache.policies.by_name["production"].spec.break_glass is not None
    )
    answer = await validate(reviews.exec(command=["ls"], user="carol"))
    assert not answer.allowed
    # The maximum of the break-glass grant (10m) caps the default duration (15m).
    assert answer.message.endswith(
        f"ask with: {HINT.replace('alice', 'carol')}; in an emergency you may break the glass "
        "(granted at once, flagged for review): kubectl jit request exec web-0 -n prod -c app "
        '--break-glass --for 10m --reason "<why>" -- ls'
    ), answer.message
    # alice may not break the glass: her denial does not mention it.
    plain = await validate(reviews.exec(command=["ls"]))
    assert "break" not in plain.message


async def test_exec_with_a_matching_grant_is_allowed_and_audited_before_the_answer(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    created = await add_grant(cluster, webhook, reviews)
    review = reviews.exec(command=["ls"], groups=["developers"])
    answer = await validate(review)
    assert answer.allowed
    assert "warnings" not in answer.response  # 15 minutes left
    # The record is on disk by the time the answer arrives, and the answer names it, so the
    # API server's own audit log points at it (`jitgate audit reconcile`).
    [record] = audit_log()
    assert answer.response["auditAnnotations"] == {
        "grant": "fix-web-0-x7k2",
        "request": "fix-web-0",
        "writer": record["writer"],
        "seq": str(record["seq"]),
        "leaf": f"sha256:{record_leaf(record).hex()}",
    }
    assert record["type"] == "action.allowed"
    assert record["grant"] == "fix-web-0-x7k2" and record["request"] == "fix-web-0"
    assert record["actor"]["groups"] == ["developers", "system:authenticated"]
    assert record["context"]["policy"] == "production"
    assert record["context"]["approvalChainDigest"] == digest(created["spec"]["approvals"])
    assert record["action"]["command"] == ["ls"] and record["action"]["tty"] is False


async def test_an_allowed_record_says_who_approved_the_grant_and_why_it_was_asked_for(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    # From the cached grant alone: the webhook reads no AccessRequest per decision.
    await add_grant(cluster, webhook, reviews, reason="INC-7: worker stuck", ticket="INC-7")
    assert (await validate(reviews.exec(command=["ls"]))).allowed
    [record] = audit_log()
    assert record["reason"] == "INC-7: worker stuck"
    assert record["context"]["approvers"] == ["bob"]
    assert record["context"]["ticket"] == "INC-7"


async def test_a_grant_issued_before_reasons_were_copied_still_admits_and_names_approvers(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(cluster, webhook, reviews)
    assert (await validate(reviews.exec(command=["ls"]))).allowed
    [record] = audit_log()
    assert "reason" not in record and "ticket" not in record["context"]
    assert record["context"]["approvers"] == ["bob"]


async def test_exec_with_another_command_container_pod_or_user_is_denied(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    await add_grant(cluster, webhook, reviews)
    other_command = await validate(reviews.exec(command=["cat", "/etc/shadow"]))
    assert not other_command.allowed
    assert "grant fix-web-0-x7k2 allows only the command ls" in other_command.message
    assert other_command.message.endswith("-- cat /etc/shadow")
    other_container = await validate(reviews.exec(container="sidecar"))
    assert not other_container.allowed
    assert "allows only container app" in other_container.message
    assert "-c sidecar" in other_container.message
    other_pod = await validate(reviews.exec("web-1"))
    assert not other_pod.allowed and "alice holds no live grant" in other_pod.message
    other_user = await validate(reviews.exec(user="mallory"))
    assert not other_user.allowed and "mallory holds no live grant" in other_user.message
    no_container = await validate(reviews.exec(container=None))
    assert not no_container.allowed  # the grant pins a container; the default one may differ


async def test_interactive_exec_needs_a_grant_that_pins_no_command(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    await add_grant(cluster, webhook, reviews)
    shell = await validate(reviews.exec(command=["ls"], stdin=True, tty=True))
    assert not shell.allowed
    assert "pins the command ls, and an interactive session" in shell.message
    # The hint asks for a grant without a command.
    assert shell.message.endswith(
        'kubectl jit request exec web-0 -n prod -c app --for 15m --reason "<why>"'
    )
    await add_grant(
        cluster,
        webhook,
        reviews,
        name="shell-web-0",
        request="shell",
        actions=[{"verb": "exec", "names": ["web-0"], "container": "app"}],
    )
    shell = await validate(reviews.exec(command=["sh"], stdin=True, tty=True))
    assert shell.allowed and shell.response["auditAnnotations"]["grant"] == "shell-web-0"
    stdin_only = await validate(reviews.exec(command=["sh"], stdin=True))
    assert stdin_only.allowed


async def test_attach_and_port_forward(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    denied = await validate(reviews.attach())
    assert not denied.allowed
    assert denied.message.endswith(
        'kubectl jit request attach web-0 -n prod -c app --for 15m --reason "<why>"'
    )
    denied = await validate(reviews.portforward(ports=[5432]))
    assert not denied.allowed
    assert "port-forward to pod web-0 in namespace prod" in denied.message
    assert denied.message.endswith(
        'kubectl jit request portforward web-0 -n prod --for 15m --reason "<why>"'
    )
    await add_grant(
        cluster,
        webhook,
        reviews,
        name="debug-web-0",
        actions=[
            {"verb": "attach", "names": ["web-0"]},
            {"verb": "portforward", "names": ["web-0"]},
        ],
    )
    assert (await validate(reviews.attach())).allowed
    assert (await validate(reviews.portforward(ports=[5432, 8080]))).allowed
    allowed = [r for r in audit_log() if r["type"] == "action.allowed"]
    assert allowed[0]["action"]["verb"] == "attach"
    assert allowed[0]["action"]["stdin"] is True and allowed[0]["action"]["tty"] is True
    assert allowed[1]["action"]["verb"] == "portforward"
    assert allowed[1]["action"]["ports"] == [5432, 8080]


async def test_unprotected_namespaces_and_exempt_callers_are_allowed_without_a_record(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    cluster.patch(
        "accesspolicies.jitgate.dev",
        None,
        "production",
        {"spec": {"exemptions": {"users": ["argocd"], "groups": []}}},
    )
    await reviews.until(
        webhook, lambda c: c.policies.by_name["production"].spec.exemptions.users == ["argocd"]
    )
    cases = [
        reviews.exec(namespace="dev"),  # no policy protects dev
        reviews.exec(user="system:node:worker-1", groups=["system:nodes"]),  # DESIGN defaults
        reviews.exec(user="system:kube-controller-manager"),
        reviews.exec(
            user="system:serviceaccount:kube-system:replicaset-controller",
            groups=["system:serviceaccounts", "system:serviceaccounts:kube-system"],
        ),
        reviews.exec(user="flux"),  # --exempt-user
        reviews.exec(user="dex", groups=["gitops"]),  # --exempt-group
        reviews.exec(user="system:serviceaccount:jitgate:jitgate-operator"),  # jitgate's own
        reviews.exec(user="argocd"),  # the policy's exemptions
    ]
    for review in cases:
        answer = await validate(review)
        assert answer.allowed, review["request"]["userInfo"]
        assert "auditAnnotations" not in answer.response
    assert audit_log() == []


async def test_dry_run_is_decided_the_same_and_audited_as_a_dry_run(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    assert not (await validate(reviews.exec(dry_run=True))).allowed
    await add_grant(cluster, webhook, reviews)
    assert (await validate(reviews.exec(dry_run=True))).allowed
    assert [(r["type"], r["dryRun"]) for r in audit_log()] == [
        ("action.denied", True),
        ("action.allowed", True),
    ]


async def test_expiry_and_not_before_follow_the_injected_clock(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, clock: Any
) -> None:
    await add_grant(cluster, webhook, reviews)
    await add_grant(
        cluster,
        webhook,
        reviews,
        name="later",
        request="later",
        not_before=clock.now() + dt.timedelta(hours=1),
        expires_at=clock.now() + dt.timedelta(hours=2),
        actions=[{"verb": "exec", "names": ["web-9"]}],
    )
    clock.advance(dt.timedelta(minutes=11))  # 4 minutes left
    answer = await validate(reviews.exec())
    assert answer.allowed
    assert answer.response["warnings"] == [
        "jitgate grant fix-web-0-x7k2 ends in 4m (at 2026-11-21T10:15:00Z)"
    ]
    clock.advance(dt.timedelta(minutes=4))  # exactly expiresAt: no longer live
    answer = await validate(reviews.exec())
    assert not answer.allowed
    assert "grant fix-web-0-x7k2 expired at 2026-11-21T10:15:00Z" in answer.message
    early = await validate(reviews.exec("web-9", container=None))
    assert not early.allowed
    assert "grant later is not valid before 2026-11-21T11:00:00Z" in early.message
    clock.set(dt.datetime(2026, 11, 21, 11, 30, tzinfo=dt.UTC))
    assert (await validate(reviews.exec("web-9", container=None))).allowed


async def test_a_grant_deleted_mid_watch_stops_authorizing(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    await add_grant(cluster, webhook, reviews)
    assert (await validate(reviews.exec())).allowed
    cluster.delete(GRANTS, "prod", "fix-web-0-x7k2")
    await reviews.until(webhook, lambda cache: len(cache.grants) == 0)
    answer = await validate(reviews.exec())
    assert not answer.allowed and "alice holds no live grant" in answer.message


async def test_a_grant_being_deleted_is_revoked(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    body = reviews.grant()
    body["metadata"]["finalizers"] = ["jitgate.dev/audit"]
    cluster.create(GRANTS, body, "prod")
    await reviews.until(webhook, lambda cache: len(cache.grants) == 1)
    assert (await validate(reviews.exec())).allowed
    cluster.delete(GRANTS, "prod", "fix-web-0-x7k2")  # stays, with a deletionTimestamp
    await reviews.until(
        webhook, lambda cache: cache.grants.for_user("prod", "alice")[0].being_deleted
    )
    answer = await validate(reviews.exec())
    assert not answer.allowed and "grant fix-web-0-x7k2 has been revoked" in answer.message


async def test_policy_and_namespace_changes_arrive_through_the_watch(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    assert not (await validate(reviews.exec())).allowed
    cluster.patch(
        "namespaces", None, "prod", {"metadata": {"labels": {"jitgate.dev/protected": None}}}
    )
    await reviews.until(webhook, lambda cache: cache.namespaces["prod"] == {})
    assert (await validate(reviews.exec())).allowed  # no longer selected by the policy
    cluster.create(
        "accesspolicies.jitgate.dev", reviews.policy("by-name", namespaces={"names": ["prod"]})
    )
    await reviews.until(webhook, lambda cache: "by-name" in cache.policies.by_name)
    answer = await validate(reviews.exec())
    assert not answer.allowed and "AccessPolicy by-name" in answer.message
    cluster.delete("accesspolicies.jitgate.dev", None, "by-name")
    await reviews.until(webhook, lambda cache: "by-name" not in cache.policies.by_name)
    assert (await validate(reviews.exec())).allowed
    assert [r["type"] for r in audit_log()] == ["action.denied", "action.denied"]


async def test_every_overlapping_policy_is_named_with_the_shortest_default_duration(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    cluster.create(
        "accesspolicies.jitgate.dev",
        reviews.policy(
            "strict",
            namespaces={"names": ["prod"]},
            requiredApprovals=2,
            maxDuration="30m",
            defaultDuration="5m",
        ),
    )
    await reviews.until(webhook, lambda cache: "strict" in cache.policies.by_name)
    answer = await validate(reviews.exec())
    assert "AccessPolicies production and strict require an approved grant" in answer.message
    assert "--for 5m" in answer.message
    record = audit_log()[-1]
    assert record["context"]["policies"] == ["production", "strict"]
    assert "policy" not in record["context"]


async def test_a_policy_the_webhook_cannot_read_fails_closed_in_its_namespaces(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    # The CRD schema cannot express every rule the model checks (here defaultDuration <=
    # maxDuration), so an AccessPolicy the API server stored may still be unreadable. It must
    # not silently stop protecting what it names.
    cluster.namespace("staging")
    cluster.create(
        "accesspolicies.jitgate.dev",
        reviews.policy(
            "broken", namespaces={"names": ["dev"]}, maxDuration="1h", defaultDuration="2h"
        ),
    )
    # A marker created afterwards: once it is cached, so is (or is not) the broken one.
    cluster.create(
        "accesspolicies.jitgate.dev", reviews.policy("marker", namespaces={"names": ["qa"]})
    )
    await reviews.until(webhook, lambda cache: "marker" in cache.policies.by_name)
    answer = await validate(reviews.exec(namespace="dev"))
    assert not answer.allowed
    assert "AccessPolicy broken is invalid" in answer.message
    assert "defaultDuration must not exceed maxDuration" in answer.message
    [record] = audit_log()
    assert record["type"] == "action.denied" and record["reason"].startswith("PolicyInvalid: ")
    # Namespaces the broken policy cannot name are decided as before.
    assert (await validate(reviews.exec(namespace="staging"))).allowed
    # Fixing the policy restores normal decisions: protected, no grant.
    cluster.patch("accesspolicies.jitgate.dev", None, "broken", {"spec": {"defaultDuration": "5m"}})
    await reviews.until(webhook, lambda cache: "broken" in cache.policies.by_name)
    answer = await validate(reviews.exec(namespace="dev"))
    assert not answer.allowed and "AccessPolicy broken requires an approved grant" in answer.message
    # Deleting it leaves dev unprotected.
    cluster.delete("accesspolicies.jitgate.dev", None, "broken")
    await reviews.until(webhook, lambda cache: "broken" not in cache.policies.by_name)
    assert (await validate(reviews.exec(namespace="dev"))).allowed


async def test_a_policy_with_an_unreadable_namespace_match_fails_closed_everywhere(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    selector = {"matchExpressions": [{"key": "team", "operator": "In", "values": []}]}
    cluster.create(
        "accesspolicies.jitgate.dev",
        reviews.policy("broken", namespaces={"selector": selector}),
    )
    cluster.create(
        "accesspolicies.jitgate.dev", reviews.policy("marker", namespaces={"names": ["qa"]})
    )
    await reviews.until(webhook, lambda cache: "marker" in cache.policies.by_name)
    answer = await validate(reviews.exec(namespace="dev"))
    assert not answer.allowed and "AccessPolicy broken is invalid" in answer.message
    # Exempt callers are still never intercepted.
    assert (await validate(reviews.exec(namespace="dev", user="flux"))).allowed


def debug_review(
    reviews: Any, pod: str = "web-0", *, added: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """`kubectl debug <pod> --image=busybox`: UPDATE of pods/ephemeralcontainers."""
    before: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod, "namespace": "prod", "uid": "pod-uid", "resourceVersion": "7"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }
    after = {**before, "spec": {**before["spec"], "ephemeralContainers": list(added or [])}}
    return reviews.review(  # type: ignore[no-any-return]
        operation="UPDATE",
        kind=("", "v1", "Pod"),
        resource=("", "v1", "pods"),
        sub_resource="ephemeralcontainers",
        namespace="prod",
        name=pod,
        obj=after,
        old=before,
        options={"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
    )


DEBUGGER = {
    "name": "debugger-x2k4",
    "image": "busybox",
    "command": ["ls"],
    "stdin": False,
    "tty": False,
    "targetContainerName": "app",
}


async def test_an_ephemeral_container_is_an_exec_that_needs_an_unpinned_grant(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    # An ephemeral container runs any image and command inside the pod (sharing its process
    # and network namespaces, mounting its volumes): it is at least an exec into the pod.
    answer = await validate(debug_review(reviews, added=[DEBUGGER]))
    assert not answer.allowed
    assert answer.message.startswith("jitgate denied exec into pod web-0 in namespace prod")
    assert 'kubectl jit request exec web-0 -n prod --for 15m --reason "<why>"' in answer.message
    # A grant pinning a container or a command does not cover it, even the same command.
    await add_grant(cluster, webhook, reviews)
    assert not (await validate(debug_review(reviews, added=[DEBUGGER]))).allowed
    await add_grant(
        cluster, webhook, reviews, name="any-exec", actions=[{"verb": "exec", "names": ["web-0"]}]
    )
    answer = await validate(debug_review(reviews, added=[DEBUGGER]))
    assert answer.allowed
    assert answer.response["auditAnnotations"]["grant"] == "any-exec"
    assert not (await validate(debug_review(reviews, "web-1", added=[DEBUGGER]))).allowed
    records = audit_log()
    assert [r["type"] for r in records] == [
        "action.denied",
        "action.denied",
        "action.allowed",
        "action.denied",
    ]
    assert records[2]["action"]["subresource"] == "ephemeralcontainers"
    assert records[2]["action"]["ephemeralContainers"] == [
        {"name": "debugger-x2k4", "image": "busybox"}
    ]
    # An update adding no container is no action.
    assert (await validate(debug_review(reviews, "web-1"))).allowed
