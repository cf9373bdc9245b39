"""Approvals count only for the spec they were made on and only before the pending deadline."""

import datetime as dt
from collections.abc import Sequence

from support.clocks import NOW

from jitgate.core.api import AccessRequestStatus, Approval
from jitgate.core.requests.tally import Requirement, tally


def is_approver(user: str, groups: Sequence[str]) -> bool:
    return "sre" in groups


def approval(user: str, digest: str | None = "sha256:a", at: dt.datetime = NOW) -> Approval:
    return Approval(user=user, groups=["sre"], decision="Approve", time=at, spec_digest=digest)


def outcome(
    approvals: list[Approval],
    spec_digest: str | None = None,
    deadline: dt.datetime | None = None,
) -> tuple[str, list[str]]:
    result = tally(
        approvals,
        requester="alice",
        requirements=[Requirement("production", 1, is_approver)],
        allow_self_approval=False,
        spec_digest=spec_digest,
        deadline=deadline,
    )
    return result.outcome, [ignored.why for ignored in result.ignored]


def test_an_approval_of_another_spec_does_not_count() -> None:
    state, why = outcome([approval("bob", "sha256:b")], spec_digest="sha256:a")
    assert state == "Pending"
    assert why == ["bob decided on a different spec than the request's"]


def test_an_unbound_approval_does_not_count_when_a_digest_is_required() -> None:
    assert outcome([approval("bob", None)], spec_digest="sha256:a")[0] == "Pending"


def test_a_matching_digest_counts_and_a_later_user_may_still_decide() -> None:
    approvals = [approval("bob", "sha256:b"), approval("bob"), approval("carol")]
    assert outcome(approvals, spec_digest="sha256:a") == (
        "Approved",
        ["bob decided on a different spec than the request's"],
    )


def test_a_decision_at_or_after_the_deadline_does_not_count() -> None:
    late = approval("bob", at=NOW + dt.timedelta(hours=1))
    assert outcome([late], deadline=NOW + dt.timedelta(hours=1)) == (
        "Pending",
        ["bob decided after the pending deadline"],
    )
    assert outcome([approval("bob")], deadline=NOW + dt.timedelta(hours=1))[0] == "Approved"


def test_without_bindings_the_tally_is_unchanged() -> None:
    assert outcome([approval("bob", None, NOW + dt.timedelta(days=1))])[0] == "Approved"


def test_status_tracks_how_many_approvals_were_observed() -> None:
    status = AccessRequestStatus.model_validate({"phase": "Pending", "observedApprovals": 2})
    assert status.observed_approvals == 2
    assert status.to_wire()["observedApprovals"] == 2
