import datetime as dt
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from jitgate.core.api import Approval
from jitgate.core.requests.tally import Requirement, pending_expired, tally

APPROVERS = {"bob", "carol", "dave", "alice"}


def is_approver(user: str, groups: Sequence[str]) -> bool:
    return user in APPROVERS or "sre" in groups


def approve(user: str, decision: str = "Approve", groups: tuple[str, ...] = ()) -> Approval:
    return Approval.model_validate({"user": user, "decision": decision, "groups": list(groups)})


def run(approvals: list[Approval], required: int = 1, allow_self: bool = False) -> str:
    return tally(
        approvals,
        requester="alice",
        requirements=[Requirement("production", required, is_approver)],
        allow_self_approval=allow_self,
    ).outcome


def test_one_approval_meets_a_threshold_of_one() -> None:
    assert run([approve("bob")]) == "Approved"


def test_two_distinct_approvers_are_needed_for_two() -> None:
    assert run([approve("bob")], required=2) == "Pending"
    assert run([approve("bob"), approve("bob")], required=2) == "Pending"
    assert run([approve("bob"), approve("carol")], required=2) == "Approved"


def test_self_approval_is_ignored_unless_allowed() -> None:
    result = tally(
        [approve("alice")],
        requester="alice",
        requirements=[Requirement("production", 1, is_approver)],
        allow_self_approval=False,
    )
    assert result.outcome == "Pending"
    assert "self-approval" in result.ignored[0].why
    assert run([approve("alice")], allow_self=True) == "Approved"


def test_the_requesters_own_deny_denies_even_where_self_approval_is_not_allowed() -> None:
    """Found by test_composition's property: a policy refusing self-approval, added to one
    that allows it, made the requester's Deny not count, and the request was approved."""
    result = tally(
        [approve("bob"), approve("alice", "Deny"), approve("carol")],
        requester="alice",
        requirements=[Requirement("production", 2, is_approver)],
        allow_self_approval=False,
    )
    assert (result.outcome, result.denied_by) == ("Denied", "alice")


def test_non_approvers_do_not_count_but_group_members_do() -> None:
    assert run([approve("mallory")]) == "Pending"
    assert run([approve("erin", groups=("sre",))]) == "Approved"


def test_any_eligible_deny_denies_even_after_partial_approval() -> None:
    result = tally(
        [approve("bob"), approve("carol", "Deny")],
        requester="alice",
        requirements=[Requirement("production", 2, is_approver)],
        allow_self_approval=False,
    )
    assert result.outcome == "Denied"
    assert result.denied_by == "carol"


def test_an_ineligible_deny_is_ignored() -> None:
    assert run([approve("mallory", "Deny"), approve("bob")]) == "Approved"


def test_a_changed_mind_is_ignored_first_decision_stands() -> None:
    assert run([approve("bob", "Deny"), approve("bob")]) == "Denied"
    assert run([approve("bob"), approve("bob", "Deny")], required=2) == "Pending"


@given(
    st.lists(
        st.tuples(st.sampled_from(["alice", "bob", "carol", "dave", "mallory"]), st.booleans()),
        max_size=12,
    ),
    st.integers(min_value=1, max_value=3),
)
def test_tally_invariants(decisions: list[tuple[str, bool]], required: int) -> None:
    approvals = [approve(user, "Approve" if ok else "Deny") for user, ok in decisions]
    result = tally(
        approvals,
        requester="alice",
        requirements=[Requirement("production", required, is_approver)],
        allow_self_approval=False,
    )
    assert len(set(result.approved_by)) == len(result.approved_by)
    assert "alice" not in result.approved_by and "mallory" not in result.approved_by
    if result.outcome == "Approved":
        assert len(result.approved_by) == required
    if result.outcome == "Pending":
        assert len(result.approved_by) < required
    # Appending more decisions never changes a reached outcome (terminal is final).
    if result.outcome != "Pending":
        more = tally(
            [*approvals, approve("dave", "Deny"), approve("carol")],
            requester="alice",
            requirements=[Requirement("production", required, is_approver)],
            allow_self_approval=False,
        )
        assert more.outcome == result.outcome


def test_pending_deadline() -> None:
    deadline = dt.datetime(2026, 11, 21, 11, 0, tzinfo=dt.UTC)
    assert not pending_expired(deadline, deadline - dt.timedelta(seconds=1))
    assert pending_expired(deadline, deadline)
    assert not pending_expired(None, deadline)
