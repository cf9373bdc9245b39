"""AccessRequest stamping (/mutate) and rules (/validate), and the Grant write guard.

Each test plays the API server: it sends the review, applies the mutating webhook's JSON
patch to the object, and sends the patched object to /validate, as admission does.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support.admission import admit, pending_access_request
from support.objects import pod
from support.personas import OPERATOR_USER

from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessRequestSpec

ALICE = {"user": "alice", "groups": ["developers"]}
BOB = {"user": "bob", "groups": ["sre"]}


def groups_of(who: dict[str, Any]) -> list[str]:
    return [*who["groups"], "system:authenticated"]


def with_approval(obj: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    new["status"].setdefault("approvals", []).append(entry)
    return new


def stamped(obj: dict[str, Any], who: dict[str, Any], decision: str = "Approve") -> dict[str, Any]:
    spec = AccessRequestSpec.model_validate(obj["spec"])
    return {
        "decision": decision,
        "comment": "ok",
        "user": who["user"],
        "groups": groups_of(who),
        "time": "2026-11-21T10:00:00Z",
        "specDigest": spec_digest(spec),
    }


async def approve(
    mutate: Any,
    validate: Any,
    reviews: Any,
    obj: dict[str, Any],
    who: dict[str, Any],
    decision: str = "Approve",
) -> tuple[Any, dict[str, Any] | None]:
    new = with_approval(obj, {"decision": decision, "comment": "ok"})
    review = reviews.ar(
        "UPDATE", new, obj, sub_resource="status", user=who["user"], groups=who["groups"]
    )
    return await admit(mutate, validate, review)


# ------------------------------------------------------------------ CREATE


async def test_create_stamps_the_requester_from_user_info(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    review = reviews.ar("CREATE", reviews.access_request(), groups=["developers"])
    answer, stored = await admit(mutate, validate, review)
    assert answer.allowed
    assert stored is not None
    assert stored["spec"]["requester"] == {
        "user": "alice",
        "groups": ["developers", "system:authenticated"],
    }
    assert audit_log() == []


async def test_a_typed_requester_is_overwritten_by_mutate_and_refused_by_validate(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    forged = reviews.access_request(requester={"user": "bob", "groups": ["sre"]})
    mutated = await mutate(reviews.ar("CREATE", forged))
    assert mutated.patch == [
        {
            "op": "replace",
            "path": "/spec/requester",
            "value": {"user": "alice", "groups": ["system:authenticated"]},
        }
    ]
    # Without the mutating webhook (or with its patch dropped) the forgery is refused.
    answer = await validate(reviews.ar("CREATE", forged))
    assert not answer.allowed
    assert answer.message == (
        "spec.requester must be the authenticated user alice, not bob; "
        "jitgate sets it, so leave it out"
    )
    [record] = audit_log()
    assert record["type"] == "action.denied"
    assert record["reason"].startswith("RequesterForged: ")
    assert record["action"] == {
        "verb": "create",
        "resource": "accessrequests.jitgate.dev",
        "name": "fix-web-0",
    }
    assert record["request"] == "fix-web-0"


async def test_create_without_the_stamp_or_with_an_invalid_spec_is_refused(
    webhook: Any, validate: Any, reviews: Any
) -> None:
    answer = await validate(reviews.ar("CREATE", reviews.access_request()))
    assert not answer.allowed and "was not stamped" in answer.message
    answer = await validate(reviews.ar("CREATE", reviews.access_request(reason="")))
    assert not answer.allowed and "spec.reason" in answer.message


# ------------------------------------------------------------------ approvals


async def test_an_approver_appends_a_stamped_approval(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    obj = pending_access_request(reviews)
    answer, stored = await approve(mutate, validate, reviews, obj, BOB)
    assert answer.allowed, answer.message
    assert stored is not None
    [entry] = stored["status"]["approvals"]
    assert entry == {
        "decision": "Approve",
        "comment": "ok",
        "user": "bob",
        "groups": ["sre", "system:authenticated"],
        "time": "2026-11-21T10:00:00Z",  # the webhook's (manual) clock
        "specDigest": spec_digest(AccessRequestSpec.model_validate(obj["spec"])),
    }
    assert audit_log() == []


async def test_a_typed_approver_identity_is_overwritten(
    webhook: Any, mutate: Any, validate: Any, reviews: Any
) -> None:
    obj = pending_access_request(reviews)
    new = with_approval(
        obj, {"decision": "Approve", "user": "bob", "groups": ["sre"], "specDigest": "sha256:x"}
    )
    review = reviews.ar("UPDATE", new, obj, sub_resource="status", user="carol", groups=["sre"])
    answer, stored = await admit(mutate, validate, review)
    assert stored is not None and stored["status"]["approvals"][0]["user"] == "carol"
    assert answer.allowed  # carol is in sre, so she may approve: as herself
    # Unstamped forgeries are refused outright.
    for forged, why in (
        ({**stamped(obj, BOB)}, "must be made as the authenticated user carol, not bob"),
        (
            {**stamped(obj, {"user": "carol", "groups": ["sre"]}), "specDigest": "sha256:0"},
            "does not match the request's current spec",
        ),
        (
            {**stamped(obj, {"user": "carol", "groups": ["sre", "admins"]})},
            "must carry the authenticated groups of carol",
        ),
    ):
        review = reviews.ar(
            "UPDATE",
            with_approval(obj, forged),
            obj,
            sub_resource="status",
            user="carol",
            groups=["sre"],
        )
        answer = await validate(review)
        assert not answer.allowed and why in answer.message, answer.message


@pytest.mark.parametrize(
    ("who", "why"),
    [
        (
            ALICE,
            "alice requested this access and cannot approve it "
            "(AccessPolicy production does not allow self-approval)",
        ),
        (
            {"user": "carol", "groups": ["developers"]},
            "carol is not an approver under AccessPolicy production",
        ),
    ],
)
async def test_self_approval_and_non_approvers_are_refused(
    webhook: Any,
    mutate: Any,
    validate: Any,
    reviews: Any,
    audit_log: Any,
    who: dict[str, Any],
    why: str,
) -> None:
    answer, _ = await approve(mutate, validate, reviews, pending_access_request(reviews), who)
    assert not answer.allowed and answer.message == why
    [record] = audit_log()
    assert record["reason"] == f"ApprovalRefused: {why}"
    assert record["action"]["subresource"] == "status"
    assert record["actor"]["user"] == who["user"]


async def test_self_approval_when_the_policy_allows_it(
    cluster: Any, webhook: Any, mutate: Any, validate: Any, reviews: Any
) -> None:
    cluster.patch(
        "accesspolicies.jitgate.dev",
        None,
        "production",
        {"spec": {"allowSelfApproval": True, "approvers": {"users": ["alice"]}}},
    )
    await reviews.until(
        webhook, lambda c: c.policies.by_name["production"].spec.allow_self_approval
    )
    answer, _ = await approve(mutate, validate, reviews, pending_access_request(reviews), ALICE)
    assert answer.allowed


async def test_one_decision_per_approver_and_only_while_pending(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, clock: Any
) -> None:
    obj = pending_access_request(reviews)
    obj["status"]["approvals"] = [stamped(obj, BOB, "Deny")]
    answer, _ = await approve(mutate, validate, reviews, obj, BOB)
    assert not answer.allowed and answer.message == "bob has already decided on this request"
    obj = pending_access_request(reviews)
    obj["status"]["phase"] = "Approved"
    answer, _ = await approve(mutate, validate, reviews, obj, BOB)
    assert not answer.allowed
    assert answer.message == "the request is Approved, so it can no longer be approved or denied"
    obj = pending_access_request(reviews)
    obj["status"]["pendingDeadline"] = "2026-11-21T09:59:59Z"  # past, on the webhook's clock
    answer, _ = await approve(mutate, validate, reviews, obj, BOB)
    assert not answer.allowed and "pending deadline has passed" in answer.message


async def test_earlier_approvals_cannot_be_edited_or_removed(
    webhook: Any, validate: Any, reviews: Any
) -> None:
    obj = pending_access_request(reviews)
    obj["status"]["approvals"] = [stamped(obj, BOB, "Deny")]
    edited = copy.deepcopy(obj)
    edited["status"]["approvals"][0]["decision"] = "Approve"
    removed = copy.deepcopy(obj)
    removed["status"]["approvals"] = []
    for new in (edited, removed):
        answer = await validate(
            reviews.ar("UPDATE", new, obj, sub_resource="status", user="carol", groups=["sre"])
        )
        assert not answer.allowed
        assert (
            answer.message
            == "earlier approvals cannot be edited or removed; approvals are append-only"
        )


async def test_only_the_operator_changes_status_beyond_approvals(
    webhook: Any, validate: Any, reviews: Any
) -> None:
    obj = pending_access_request(reviews)
    new = copy.deepcopy(obj)
    new["status"]["phase"] = "Approved"
    new["status"]["grant"] = {"name": "x", "expiresAt": "2026-11-21T11:00:00Z"}
    answer = await validate(
        reviews.ar("UPDATE", new, obj, sub_resource="status", user="bob", groups=["sre"])
    )
    assert not answer.allowed and "only the jitgate operator may change" in answer.message
    answer = await validate(
        reviews.ar(
            "UPDATE",
            new,
            obj,
            sub_resource="status",
            user=OPERATOR_USER,
            groups=["system:serviceaccounts", "system:serviceaccounts:jitgate"],
        )
    )
    assert answer.allowed


async def test_the_spec_is_immutable_for_everyone(
    webhook: Any, validate: Any, reviews: Any
) -> None:
    obj = pending_access_request(reviews)
    for who in ("alice", OPERATOR_USER):
        new = copy.deepcopy(obj)
        new["spec"]["duration"] = "8h"
        answer = await validate(reviews.ar("UPDATE", new, obj, user=who))
        assert not answer.allowed
        assert answer.message.startswith(
            "the spec of an AccessRequest cannot change after creation"
        )


async def test_approvals_need_the_policy_cache(webhook: Any, validate: Any, reviews: Any) -> None:
    obj = pending_access_request(reviews)
    obj["status"]["policy"] = "vanished"
    answer = await validate(
        reviews.ar(
            "UPDATE",
            with_approval(obj, stamped(obj, BOB)),
            obj,
            sub_resource="status",
            user="bob",
            groups=["sre"],
        )
    )
    assert not answer.allowed
    assert (
        answer.message
        == "the policies governing this request are unknown, so no approval can be checked"
    )


# ------------------------------------------------------------------ cancel and revoke


def annotated(obj: dict[str, Any], **annotations: str) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    new["metadata"].setdefault("annotations", {}).update(annotations)
    return new


async def test_cancel_by_the_requester_is_stamped(
    webhook: Any, mutate: Any, validate: Any, reviews: Any
) -> None:
    obj = pending_access_request(reviews)
    review = reviews.ar(
        "UPDATE", annotated(obj, **{"jitgate.dev/cancel": "true"}), obj, groups=["developers"]
    )
    answer, stored = await admit(mutate, validate, review)
    assert answer.allowed
    assert stored is not None
    assert stored["metadata"]["annotations"]["jitgate.dev/cancelled-by"] == "alice"


async def test_cancel_or_revoke_by_anyone_else_is_refused(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    obj = pending_access_request(reviews)
    review = reviews.ar(
        "UPDATE", annotated(obj, **{"jitgate.dev/cancel": "true"}), obj, user="mallory"
    )
    answer, _ = await admit(mutate, validate, review)
    assert not answer.allowed
    assert answer.message == "only the requester or an approver may cancel this request"
    approved = pending_access_request(reviews)
    approved["status"]["phase"] = "Approved"
    review = reviews.ar(
        "UPDATE", annotated(approved, **{"jitgate.dev/revoke": "true"}), approved, user="mallory"
    )
    answer, _ = await admit(mutate, validate, review)
    assert (
        not answer.allowed
        and answer.message == "only the requester or an approver may revoke this request"
    )
    assert [r["reason"].split(":")[0] for r in audit_log()] == ["NotAllowed", "NotAllowed"]


async def test_revoke_by_an_approver_and_forged_stamps(
    webhook: Any, mutate: Any, validate: Any, reviews: Any
) -> None:
    approved = pending_access_request(reviews)
    approved["status"]["phase"] = "Approved"
    review = reviews.ar(
        "UPDATE",
        annotated(approved, **{"jitgate.dev/revoke": "true"}),
        approved,
        user="bob",
        groups=["sre"],
    )
    answer, stored = await admit(mutate, validate, review)
    assert answer.allowed
    assert (
        stored is not None and stored["metadata"]["annotations"]["jitgate.dev/revoked-by"] == "bob"
    )
    forged = annotated(
        approved, **{"jitgate.dev/revoke": "true", "jitgate.dev/revoked-by": "alice"}
    )
    answer = await validate(reviews.ar("UPDATE", forged, approved, user="bob", groups=["sre"]))
    assert not answer.allowed
    assert (
        answer.message
        == "annotation jitgate.dev/revoked-by must name the authenticated user bob; jitgate sets it"
    )
    pending = pending_access_request(reviews)
    answer, _ = await admit(
        mutate,
        validate,
        reviews.ar("UPDATE", annotated(pending, **{"jitgate.dev/revoke": "true"}), pending),
    )
    assert not answer.allowed
    assert answer.message == "only an Approved request can be revoked; this one is Pending"


# ------------------------------------------------------------------ break-glass review


def break_glass(reviews: Any, phase: str = "Approved") -> dict[str, Any]:
    obj = pending_access_request(reviews, breakGlass=True)
    obj["status"]["phase"] = phase
    return obj


REVIEW = {"jitgate.dev/review": "true", "jitgate.dev/review-comment": "justified: SEV1"}


@pytest.mark.parametrize("phase", ["Approved", "Expired", "Revoked"])
async def test_an_approver_reviews_a_break_glass_request_and_is_stamped(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, audit_log: Any, phase: str
) -> None:
    obj = break_glass(reviews, phase)
    review = reviews.ar("UPDATE", annotated(obj, **REVIEW), obj, user="bob", groups=["sre"])
    mutated = await mutate(review)
    assert mutated.patch == [
        {"op": "add", "path": "/metadata/annotations/jitgate.dev~1reviewed-by", "value": "bob"}
    ]
    answer, stored = await admit(mutate, validate, review)
    assert answer.allowed
    assert stored is not None
    assert stored["metadata"]["annotations"] == {**REVIEW, "jitgate.dev/reviewed-by": "bob"}
    assert audit_log() == []


async def test_a_review_by_the_requester_or_a_non_approver_is_refused(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    obj = break_glass(reviews)
    own = reviews.ar("UPDATE", annotated(obj, **REVIEW), obj, groups=["developers", "sre"])
    answer, _ = await admit(mutate, validate, own)
    assert not answer.allowed
    assert answer.message == "alice activated this break-glass grant and cannot review it"
    other = reviews.ar("UPDATE", annotated(obj, **REVIEW), obj, user="mallory")
    answer, _ = await admit(mutate, validate, other)
    assert not answer.allowed
    assert answer.message == (
        "mallory is not an approver under AccessPolicy production, so cannot review this request"
    )
    assert [r["reason"].split(":")[0] for r in audit_log()] == ["NotAllowed", "NotAllowed"]


async def test_only_an_approved_break_glass_request_can_be_reviewed(
    webhook: Any, mutate: Any, validate: Any, reviews: Any
) -> None:
    ordinary = pending_access_request(reviews)
    ordinary["status"]["phase"] = "Approved"
    review = reviews.ar(
        "UPDATE", annotated(ordinary, **REVIEW), ordinary, user="bob", groups=["sre"]
    )
    answer, _ = await admit(mutate, validate, review)
    assert not answer.allowed
    assert answer.message == (
        "only a break-glass request needs a review; its approvers already approved this one"
    )
    denied = break_glass(reviews, "Denied")
    review = reviews.ar("UPDATE", annotated(denied, **REVIEW), denied, user="bob", groups=["sre"])
    answer, _ = await admit(mutate, validate, review)
    assert not answer.allowed
    assert answer.message == (
        "only an Approved, Expired or Revoked request can be reviewed; this one is Denied"
    )
    # Nor can a request be created reviewed, by its requester, stamped or not.
    fresh = annotated(reviews.access_request(breakGlass=True), **REVIEW)
    answer, _ = await admit(mutate, validate, reviews.ar("CREATE", fresh, groups=["oncall"]))
    assert not answer.allowed
    assert answer.message == (
        "only an Approved, Expired or Revoked request can be reviewed; this one is new"
    )


async def test_the_reviewer_cannot_be_forged_or_changed(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    obj = break_glass(reviews)
    forged = annotated(obj, **REVIEW, **{"jitgate.dev/reviewed-by": "carol"})
    answer = await validate(reviews.ar("UPDATE", forged, obj, user="bob", groups=["sre"]))
    assert not answer.allowed
    assert answer.message == (
        "annotation jitgate.dev/reviewed-by must name the authenticated user bob; jitgate sets it"
    )
    reviewed = annotated(obj, **REVIEW, **{"jitgate.dev/reviewed-by": "bob"})
    # carol, an approver too, retypes the reviewer: stamped as herself, then refused.
    retyped = annotated(reviewed, **{"jitgate.dev/reviewed-by": "carol"})
    answer, _ = await admit(
        mutate, validate, reviews.ar("UPDATE", retyped, reviewed, user="carol", groups=["sre"])
    )
    assert not answer.allowed
    assert answer.message == (
        "this request was already reviewed by bob; a review cannot be changed or withdrawn"
    )
    withdrawn = copy.deepcopy(reviewed)
    del withdrawn["metadata"]["annotations"]["jitgate.dev/review-comment"]
    answer, _ = await admit(
        mutate, validate, reviews.ar("UPDATE", withdrawn, reviewed, user="bob", groups=["sre"])
    )
    assert not answer.allowed and "already reviewed by bob" in answer.message
    assert [r["reason"].split(":")[0] for r in audit_log()] == [
        "AnnotationForged",
        "AlreadyReviewed",
        "AlreadyReviewed",
    ]
    # The operator is not held to these rules.
    answer = await validate(reviews.ar("UPDATE", withdrawn, reviewed, user=OPERATOR_USER))
    assert answer.allowed


# ------------------------------------------------------------------ Grants


async def test_only_the_operator_writes_grants(
    webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    body = reviews.grant()
    attempts = [
        reviews.grant_write("CREATE", body, user="alice"),
        reviews.grant_write("UPDATE", body, body, user="alice", sub_resource="status"),
        reviews.grant_write("DELETE", None, body, user="bob", groups=["sre"]),
    ]
    for review in attempts:
        answer = await validate(review)
        assert not answer.allowed
        assert (
            "only the jitgate operator (system:serviceaccount:jitgate:jitgate-operator) may"
            in answer.message
        )
    assert [(r["type"], r["action"]["verb"], r["grant"]) for r in audit_log()] == [
        ("action.denied", "create", "fix-web-0-x7k2"),
        ("action.denied", "update", "fix-web-0-x7k2"),
        ("action.denied", "delete", "fix-web-0-x7k2"),
    ]
    assert (await validate(reviews.grant_write("CREATE", body, user=OPERATOR_USER))).allowed
    assert (await validate(reviews.grant_write("DELETE", None, body, user=OPERATOR_USER))).allowed
    collector = "system:serviceaccount:kube-system:generic-garbage-collector"
    assert (await validate(reviews.grant_write("DELETE", None, body, user=collector))).allowed
    assert not (await validate(reviews.grant_write("UPDATE", body, body, user=collector))).allowed


# ------------------------------------------------------------------ CREATE against the policies


@pytest.mark.parametrize("dry_run", [False, True])
async def test_a_request_above_the_policy_maximum_is_refused_at_once(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, audit_log: Any, dry_run: bool
) -> None:
    obj = reviews.access_request(duration="10h")
    answer, _ = await admit(
        mutate, validate, reviews.ar("CREATE", obj, groups=["developers"], dry_run=dry_run)
    )
    assert not answer.allowed
    assert answer.message == (
        "duration 10h is too long: access lasts at most 1h (AccessPolicy production); "
        "ask for --for 1h or less"
    )


async def test_a_request_in_a_namespace_no_policy_covers_is_refused(
    webhook: Any, mutate: Any, validate: Any, reviews: Any
) -> None:
    obj = reviews.access_request(namespace="dev")
    answer, _ = await admit(mutate, validate, reviews.ar("CREATE", obj, groups=["developers"]))
    assert not answer.allowed
    assert answer.message == (
        "no AccessPolicy protects exec on pods in namespace dev, so there is nothing to request"
    )


async def test_a_name_with_its_kind_is_refused_saying_what_to_write(
    webhook: Any, mutate: Any, validate: Any, reviews: Any
) -> None:
    action = {"verb": "delete", "resource": "deployments.apps", "names": ["deploy/web"]}
    obj = reviews.access_request(actions=[action])
    answer, _ = await admit(mutate, validate, reviews.ar("CREATE", obj, groups=["developers"]))
    assert not answer.allowed
    assert answer.message == (
        "names are object names without a kind: write web, not deploy/web; "
        "the action's resource says the kind"
    )


async def test_a_request_for_a_pod_that_does_not_exist_is_admitted_with_a_warning(
    webhook: Any, mutate: Any, validate: Any, reviews: Any, cluster: Any
) -> None:
    for name in ("web-0", "web-1"):
        cluster.create("pods", pod(name), "prod")
    typo = {"verb": "exec", "names": ["web-9"]}
    obj = reviews.access_request(actions=[typo])
    answer, _ = await admit(mutate, validate, reviews.ar("CREATE", obj, groups=["developers"]))
    assert answer.allowed
    assert answer.response["warnings"] == [
        "no pod web-9 in namespace prod; check the name (pods there: web-0, web-1)"
    ]
    existing = reviews.access_request(actions=[{"verb": "exec", "names": ["web-1"]}])
    answer, _ = await admit(mutate, validate, reviews.ar("CREATE", existing, groups=["developers"]))
    assert answer.allowed
    assert "warnings" not in answer.response
