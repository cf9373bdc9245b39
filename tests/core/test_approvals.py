import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from jitgate.approvals import (
    Identity,
    check_annotation_request,
    check_approval_append,
    spec_digest,
    stamp_annotations,
    stamp_new_approvals,
    stamp_requester,
)
from jitgate.lifecycle import CANCEL_ANNOTATION, REVOKE_ANNOTATION
from jitgate.models import AccessPolicy, AccessRequestSpec, Approval

NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
SPEC = AccessRequestSpec.model_validate(
    {"actions": [{"verb": "exec", "names": ["web-0"]}], "reason": "INC-1"}
)
DIGEST = spec_digest(SPEC)
BOB = Identity("bob", ("sre",))
ALICE = Identity("alice", ("developers",))


def approval(user: str, decision: str = "Approve", digest: str = DIGEST) -> Approval:
    return Approval.model_validate(
        {"user": user, "decision": decision, "specDigest": digest, "time": NOW}
    )


def check(
    policy: AccessPolicy,
    new: list[Approval],
    old: list[Approval] | None = None,
    who: Identity = BOB,
    phase: str | None = "Pending",
) -> str | None:
    return check_approval_append(
        phase=phase,
        old_approvals=old or [],
        new_approvals=new,
        requester="alice",
        who=who,
        policy=policy,
        digest_of_spec=DIGEST,
    )


def test_requester_is_stamped_over_whatever_was_typed() -> None:
    assert stamp_requester({"reason": "x"}, ALICE) == [
        {
            "op": "add",
            "path": "/spec/requester",
            "value": {"user": "alice", "groups": ["developers"]},
        }
    ]
    forged = stamp_requester({"requester": {"user": "bob"}}, ALICE)
    assert forged[0]["op"] == "replace"
    assert forged[0]["value"]["user"] == "alice"


def test_only_new_approvals_are_stamped() -> None:
    old = [{"user": "carol", "decision": "Approve"}]
    new = [*old, {"decision": "Approve", "comment": "ok", "user": "mallory"}]
    patch = stamp_new_approvals(old, new, BOB, NOW, DIGEST)
    assert patch == [
        {
            "op": "replace",
            "path": "/status/approvals/1",
            "value": {
                "decision": "Approve",
                "comment": "ok",
                "user": "bob",
                "groups": ["sre"],
                "time": "2026-11-21T10:00:00Z",
                "specDigest": DIGEST,
            },
        }
    ]


def test_a_valid_approval_passes(policy_factory: Callable[..., AccessPolicy]) -> None:
    assert check(policy_factory(), [approval("bob")]) is None


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("self", "cannot approve it"),
        ("non-approver", "is not an approver"),
        ("duplicate", "has already decided"),
        ("edit", "append-only"),
        ("remove", "append-only"),
        ("not-pending", "no longer be approved"),
        ("impersonation", "as the authenticated user bob"),
        ("stale-spec", "current spec"),
        ("two-at-once", "one approval at a time"),
    ],
)
def test_refusals(policy_factory: Callable[..., AccessPolicy], case: str, message: str) -> None:
    policy = policy_factory()
    earlier = [approval("carol")]
    args: dict[str, Any] = {
        "self": {"new": [approval("alice")], "who": ALICE},
        "non-approver": {"new": [approval("mallory")], "who": Identity("mallory", ())},
        "duplicate": {"old": [approval("bob")], "new": [approval("bob"), approval("bob")]},
        "edit": {"old": earlier, "new": [approval("carol", "Deny")]},
        "remove": {"old": earlier, "new": []},
        "not-pending": {"new": [approval("bob")], "phase": "Approved"},
        "impersonation": {"new": [approval("carol")]},
        "stale-spec": {"new": [approval("bob", digest="sha256:0")]},
        "two-at-once": {"new": [approval("bob"), approval("carol")]},
    }[case]
    reason = check(policy, **args)
    assert reason is not None and message in reason


def test_self_approval_allowed_by_policy(policy_factory: Callable[..., AccessPolicy]) -> None:
    policy = policy_factory(allowSelfApproval=True, approvers={"users": ["alice"]})
    assert check(policy, [approval("alice")], who=ALICE) is None


def test_unchanged_approvals_pass(policy_factory: Callable[..., AccessPolicy]) -> None:
    earlier = [approval("carol")]
    assert check(policy_factory(), earlier, old=earlier, phase="Approved") is None


def test_cancel_and_revoke_permissions(policy_factory: Callable[..., AccessPolicy]) -> None:
    policy = policy_factory()
    common: dict[str, Any] = {"requester": "alice", "policy": policy}
    assert (
        check_annotation_request(annotation=CANCEL_ANNOTATION, phase="Pending", who=ALICE, **common)
        is None
    )
    assert (
        check_annotation_request(annotation=REVOKE_ANNOTATION, phase="Approved", who=BOB, **common)
        is None
    )
    refused = check_annotation_request(
        annotation=REVOKE_ANNOTATION, phase="Approved", who=Identity("mallory", ()), **common
    )
    assert refused == "only the requester or an approver may revoke this request"
    wrong_phase = check_annotation_request(
        annotation=CANCEL_ANNOTATION, phase="Approved", who=ALICE, **common
    )
    assert wrong_phase == "only a Pending request can be cancelled; this one is Approved"


def test_who_asked_is_stamped() -> None:
    patch = stamp_annotations({}, {CANCEL_ANNOTATION: "true"}, ALICE)
    assert patch == [
        {"op": "add", "path": "/metadata/annotations/jitgate.dev~1cancelled-by", "value": "alice"}
    ]
    forged = stamp_annotations(
        {CANCEL_ANNOTATION: "true", "jitgate.dev/cancelled-by": "alice"},
        {CANCEL_ANNOTATION: "true", "jitgate.dev/cancelled-by": "bob"},
        Identity("mallory", ()),
    )
    assert forged[0]["value"] == "mallory"
    assert stamp_annotations({}, {"unrelated": "x"}, ALICE) == []


def test_spec_digest_is_stable_across_key_order_and_defaults() -> None:
    same = AccessRequestSpec.model_validate(
        {"reason": "INC-1", "breakGlass": False, "actions": [{"names": ["web-0"], "verb": "exec"}]}
    )
    assert spec_digest(same) == DIGEST
    assert DIGEST.startswith("sha256:") and len(DIGEST) == 7 + 64
    other = AccessRequestSpec.model_validate(
        {"actions": [{"verb": "exec", "names": ["web-1"]}], "reason": "INC-1"}
    )
    assert spec_digest(other) != DIGEST
