from collections.abc import Callable
from typing import Any

import pytest
from support.clocks import NOW

from jitgate.core.admission.annotations import (
    check_annotation_changes,
    check_annotation_request,
    check_created_annotations,
)
from jitgate.core.admission.approvals import check_approval_append, spec_digest
from jitgate.core.admission.stamping import (
    stamp_annotations,
    stamp_new_approvals,
    stamp_requester,
)
from jitgate.core.admission.writes import Identity
from jitgate.core.api import AccessPolicy, AccessRequestSpec, Approval
from jitgate.core.policy import Governing
from jitgate.core.refusals import Refusal
from jitgate.core.requests.annotations import (
    CANCEL_ANNOTATION,
    REVIEW_ANNOTATION,
    REVIEW_COMMENT_ANNOTATION,
    REVIEWED_BY_ANNOTATION,
    REVOKE_ANNOTATION,
)

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
        governing=Governing.of([policy]),
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


def test_where_a_decision_came_from_is_stamped_from_the_caller_never_typed(
    policy_factory: Callable[..., AccessPolicy],
) -> None:
    from jitgate.core.admission.writes import via_of

    slack_bob = Identity("bob", ("sre",), via_of({"jitgate.dev/via": ["slack"]}))
    assert slack_bob.via == "slack"
    assert via_of({"jitgate.dev/via": ["pager"]}) is None
    assert via_of({"jitgate.dev/via": ["slack", "slack"]}) is None
    assert via_of(None) is None
    typed = [{"decision": "Approve", "via": "slack"}]
    assert "via" not in stamp_new_approvals([], typed, BOB, NOW, DIGEST)[0]["value"]
    assert stamp_new_approvals([], typed, slack_bob, NOW, DIGEST)[0]["value"]["via"] == "slack"
    through_slack = Approval.model_validate(approval("bob").to_wire() | {"via": "slack"})
    assert check(policy_factory(), [through_slack], who=slack_bob) is None
    assert "never typed" in (check(policy_factory(), [through_slack]) or "")
    assert "never typed" in (check(policy_factory(), [approval("bob")], who=slack_bob) or "")


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
    cases: dict[str, dict[str, Any]] = {
        "self": {"new": [approval("alice")], "who": ALICE},
        "non-approver": {"new": [approval("mallory")], "who": Identity("mallory", ())},
        "duplicate": {"old": [approval("bob")], "new": [approval("bob"), approval("bob")]},
        "edit": {"old": earlier, "new": [approval("carol", "Deny")]},
        "remove": {"old": earlier, "new": []},
        "not-pending": {"new": [approval("bob")], "phase": "Approved"},
        "impersonation": {"new": [approval("carol")]},
        "stale-spec": {"new": [approval("bob", digest="sha256:0")]},
        "two-at-once": {"new": [approval("bob"), approval("carol")]},
    }
    args = cases[case]
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
    common: dict[str, Any] = {"requester": "alice", "governing": Governing.of([policy])}
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


def test_the_reviewer_is_stamped_like_the_others() -> None:
    review = {REVIEW_ANNOTATION: "true", REVIEW_COMMENT_ANNOTATION: "fine"}
    assert stamp_annotations({}, review, BOB) == [
        {"op": "add", "path": "/metadata/annotations/jitgate.dev~1reviewed-by", "value": "bob"}
    ]
    typed = stamp_annotations({}, {**review, REVIEWED_BY_ANNOTATION: "carol"}, BOB)
    assert typed == [
        {"op": "replace", "path": "/metadata/annotations/jitgate.dev~1reviewed-by", "value": "bob"}
    ]
    stored = {**review, REVIEWED_BY_ANNOTATION: "bob"}
    assert stamp_annotations(stored, {**stored, "unrelated": "x"}, ALICE) == []


def changes(
    policy: AccessPolicy,
    new: dict[str, str],
    old: dict[str, str] | None = None,
    *,
    who: Identity = BOB,
    phase: str | None = "Approved",
    break_glass: bool = True,
) -> Refusal | None:
    return check_annotation_changes(
        old or {},
        new,
        who=who,
        requester="alice",
        phase=phase,
        break_glass=break_glass,
        governing=lambda: Governing.of([policy]),
    )


REVIEWED = {REVIEW_ANNOTATION: "true", REVIEWED_BY_ANNOTATION: "bob"}


@pytest.mark.parametrize("phase", ["Approved", "Expired", "Revoked"])
def test_an_approver_reviews_a_break_glass_request_once_approved(
    policy_factory: Callable[..., AccessPolicy], phase: str
) -> None:
    assert changes(policy_factory(), REVIEWED, phase=phase) is None
    commented = {**REVIEWED, REVIEW_COMMENT_ANNOTATION: "justified: SEV1"}
    assert changes(policy_factory(), commented, phase=phase) is None


@pytest.mark.parametrize(
    ("case", "reason", "message"),
    [
        ("requester", "NotAllowed", "alice activated this break-glass grant and cannot review it"),
        (
            "non-approver",
            "NotAllowed",
            "mallory is not an approver under AccessPolicy production, so cannot review this "
            "request",
        ),
        (
            "not-break-glass",
            "NotAllowed",
            "only a break-glass request needs a review; its approvers already approved this one",
        ),
        (
            "pending",
            "NotAllowed",
            "only an Approved, Expired or Revoked request can be reviewed; this one is Pending",
        ),
        (
            "denied",
            "NotAllowed",
            "only an Approved, Expired or Revoked request can be reviewed; this one is Denied",
        ),
        ("not-true", "NotAllowed", 'set annotation jitgate.dev/review to "true" to review'),
        ("stamp-only", "NotAllowed", 'set annotation jitgate.dev/review to "true" to review'),
        (
            "forged",
            "AnnotationForged",
            "annotation jitgate.dev/reviewed-by must name the authenticated user bob",
        ),
        ("changed", "AlreadyReviewed", "already reviewed by bob; a review cannot be changed"),
        ("re-commented", "AlreadyReviewed", "already reviewed by bob"),
        ("withdrawn", "AlreadyReviewed", "already reviewed by bob"),
    ],
)
def test_review_refusals(
    policy_factory: Callable[..., AccessPolicy], case: str, reason: str, message: str
) -> None:
    mallory = Identity("mallory", ())
    carol = Identity("carol", ("sre",))
    cases: dict[str, dict[str, Any]] = {
        "requester": {"new": {**REVIEWED, REVIEWED_BY_ANNOTATION: "alice"}, "who": ALICE},
        "non-approver": {"new": {**REVIEWED, REVIEWED_BY_ANNOTATION: "mallory"}, "who": mallory},
        "not-break-glass": {"new": REVIEWED, "break_glass": False},
        "pending": {"new": REVIEWED, "phase": "Pending"},
        "denied": {"new": REVIEWED, "phase": "Denied"},
        "not-true": {"new": {**REVIEWED, REVIEW_ANNOTATION: "yes"}},
        "stamp-only": {"new": {REVIEWED_BY_ANNOTATION: "bob"}},
        "forged": {"new": {**REVIEWED, REVIEWED_BY_ANNOTATION: "carol"}},
        "changed": {
            "old": REVIEWED,
            "new": {**REVIEWED, REVIEWED_BY_ANNOTATION: "carol"},
            "who": carol,
        },
        "re-commented": {"old": REVIEWED, "new": {**REVIEWED, REVIEW_COMMENT_ANNOTATION: "x"}},
        "withdrawn": {"old": REVIEWED, "new": {}},
    }
    args = cases[case]
    refused = changes(policy_factory(), **args)
    assert refused is not None
    assert refused.reason == reason
    assert message in refused.message


def test_unrelated_annotations_after_a_review_pass(
    policy_factory: Callable[..., AccessPolicy],
) -> None:
    assert changes(policy_factory(), {**REVIEWED, "team": "db"}, REVIEWED) is None
    # A comment alone is not a review yet, and the operator reads it when the review comes.
    assert changes(policy_factory(), {REVIEW_COMMENT_ANNOTATION: "looking"}) is None


def test_a_new_request_cannot_arrive_reviewed() -> None:
    assert check_created_annotations({CANCEL_ANNOTATION: "true"}) is None
    for annotations in ({REVIEW_ANNOTATION: "true"}, {REVIEWED_BY_ANNOTATION: "bob"}):
        assert check_created_annotations(annotations) == (
            "only an Approved, Expired or Revoked request can be reviewed; this one is new"
        )


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
