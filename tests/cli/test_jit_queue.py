"""The approver's queue, without a cluster: who may decide what, for how long it would be
granted, and in which order requests are listed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from support import objects
from support.clocks import NOW

from jitgate.cli.kubectl_jit.approver_queue import (
    Entry,
    deadline_key,
    governing,
    grant_length,
    may_decide,
    queue_row,
)
from jitgate.cli.kubectl_jit.cluster import Me
from jitgate.core.api import AccessRequest
from jitgate.core.policy import Governing

PRODUCTION = Governing((objects.policy_model(maxDuration="1h", defaultDuration="15m"),))
BOB = Me("bob", ("sre",))


def request(name: str = "fix", requester: str = "alice", **fields: Any) -> AccessRequest:
    status = fields.pop("status", {"phase": "Pending", "policy": "production"})
    return objects.access_request_model(
        name, requester=objects.requester(requester, ()), status=status, **fields
    )


def test_only_an_approver_who_has_not_decided_and_is_not_the_requester_may_decide() -> None:
    assert may_decide(request(), PRODUCTION, BOB)
    assert not may_decide(request(), PRODUCTION, Me("dave", ("developers",)))
    assert not may_decide(request(requester="bob"), PRODUCTION, BOB)
    selfish = Governing((objects.policy_model(allowSelfApproval=True),))
    assert may_decide(request(requester="bob"), selfish, BOB)
    voted = {"phase": "Pending", "approvals": [{"user": "bob", "decision": "Approve"}]}
    assert not may_decide(request(status=voted), PRODUCTION, BOB)


def test_the_governing_policy_is_the_recorded_one_else_the_one_the_operator_will_find() -> None:
    other = objects.policy_model("other", namespaces={"names": ["staging"]})
    (production,) = PRODUCTION.policies
    assert governing(request(), [other, production], None) == PRODUCTION
    unseen = request(status={})
    assert governing(unseen, [other, production], {}) == PRODUCTION
    assert governing(unseen, [other], {}) is None  # no policy would accept it
    assert governing(unseen, [production], None) is None  # the namespace is unreadable


def test_a_request_under_two_policies_is_decided_by_an_approver_of_either() -> None:
    team = objects.policy_model("team-a", approvers={"groups": ["developers"]}, maxDuration="30m")
    (production,) = PRODUCTION.policies
    both = governing(request(status={}), [production, team], {})
    assert both is not None and both.names == ("production", "team-a")
    assert may_decide(request(), both, Me("dave", ("developers",)))
    assert not may_decide(request(), both, Me("erin", ("security",)))
    assert grant_length(request(duration="45m"), both) == "30m (capped from 45m)"
    recorded = {
        "phase": "Pending",
        "policies": [
            {"name": "production", "requiredApprovals": 1},
            {"name": "team-a", "requiredApprovals": 1},
        ],
    }
    assert governing(request(status=recorded), [production], None) is None  # team-a is gone


def test_the_grant_length_is_real_never_policy_default() -> None:
    assert grant_length(request(), PRODUCTION) == "15m (the policy's default)"
    assert grant_length(request(duration="30m"), PRODUCTION) == "30m"
    assert grant_length(request(duration="3h"), PRODUCTION) == "1h (capped from 3h)"
    assert grant_length(request(duration="30m"), None) == "30m"


def test_soonest_deadline_first_and_unseen_requests_last() -> None:
    def entry(name: str, minutes: int | None) -> Entry:
        deadline = NOW + dt.timedelta(minutes=minutes) if minutes is not None else None
        status = {"phase": "Pending", "pendingDeadline": deadline} if deadline else {}
        return Entry(request(name, status=status), PRODUCTION)

    entries = [entry("later", 50), entry("unseen", None), entry("soon", 5)]
    ordered = sorted(entries, key=deadline_key)
    assert [e.request.metadata.name for e in ordered] == ["soon", "later", "unseen"]
    row = queue_row(ordered[0], NOW, with_namespace=False)
    assert row == ["soon", "alice", "exec pod/web-0 (any container, any command, interactive)",
                   "15m (the policy's default)", "0/?", "in 5m", objects.REASON]  # fmt: skip
