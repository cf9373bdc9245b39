"""Anti-shopping: after an approver denies a request, a request for overlapping actions within
the policy's `afterDenial.cooldown` needs an approval from the denier's side.

Run through the state machine the operator runs (`decide`): the denied request is what the
operator's index hands the next decision (`denial_of`), the new request is admitted and its
approvals tallied.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from support.clocks import NOW

from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessPolicy, AccessRequest
from jitgate.core.clock import format_time
from jitgate.core.policy import Namespace
from jitgate.core.requests.after_denial import Denial, denial_of, overlaps
from jitgate.core.requests.decide import decide
from jitgate.core.requests.step import Step, World
from jitgate.core.requests.stored import read_request

PROD = Namespace("prod", {})
GROUPS = {"alice": ("developers",), "bob": ("sre",), "carol": ("dba",), "dave": ("sre",)}
POLICY = AccessPolicy.model_validate(
    {
        "metadata": {"name": "production"},
        "spec": {
            "namespaces": {"names": ["prod"]},
            "actions": ["exec", "delete"],
            "approvers": {"groups": ["sre", "dba"]},
            "afterDenial": {"cooldown": "1h"},
        },
    }
)
EXEC_WEB_0 = {"verb": "exec", "names": ["web-0"]}


def request(name: str, *actions: dict[str, Any], created: dt.datetime = NOW) -> AccessRequest:
    raw: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "prod",
            "uid": f"uid-{name}",
            "creationTimestamp": format_time(created),
        },
        "spec": {
            "actions": list(actions) or [EXEC_WEB_0],
            "reason": "INC-1234: worker stuck",
            "requester": {"user": "alice", "groups": ["developers"]},
        },
    }
    parsed = read_request(raw)
    assert isinstance(parsed, AccessRequest)
    return parsed


def decision(req: AccessRequest, user: str, verdict: str = "Approve") -> dict[str, Any]:
    return {
        "user": user,
        "groups": list(GROUPS[user]),
        "decision": verdict,
        "time": format_time(NOW),
        "specDigest": spec_digest(req.spec),
    }


def world(denials: list[Denial], now: dt.datetime = NOW) -> World:
    return World(
        now=now,
        policies=[POLICY],
        namespace=PROD,
        retention=dt.timedelta(days=1),
        denials=denials,
    )


def denied_by_bob(at: dt.datetime = NOW - dt.timedelta(minutes=10)) -> Denial:
    """Bob (group sre) denied alice's first request `first`, through the state machine."""
    first = request("first", created=at - dt.timedelta(minutes=1))
    admitted = decide(first, world([], at))
    assert admitted.status is not None
    entry = decision(first, "bob", "Deny") | {"time": format_time(at), "comment": "runbook"}
    pending = first.to_wire() | {
        "status": admitted.status.to_patch() | {"approvals": [entry], "observedApprovals": 0}
    }
    stored = read_request(pending)
    assert isinstance(stored, AccessRequest)
    step = decide(stored, world([], at))
    assert step.status is not None and step.status.phase == "Denied"
    done = read_request(pending | {"status": pending["status"] | step.status.to_patch()})
    assert isinstance(done, AccessRequest)
    found = denial_of(done)
    assert found is not None
    return found


def tally(
    req: AccessRequest, denials: list[Denial], *users: str, admitted_before: bool = False
) -> Step:
    """Admit `req` (before the denials were made, with `admitted_before`), then let `users`
    approve in order."""
    admitted = decide(req, world([] if admitted_before else denials))
    assert admitted.status is not None
    raw = req.to_wire()
    raw["status"] = admitted.status.to_patch() | {
        "approvals": [decision(req, user) for user in users],
        "observedApprovals": 0,
    }
    stored = read_request(raw)
    assert isinstance(stored, AccessRequest)
    return decide(stored, world(denials))


def test_the_denial_of_an_approver_is_read_with_who_when_and_what() -> None:
    denial = denied_by_bob()
    assert (denial.request, denial.denied_by, denial.groups) == ("first", "bob", ("sre",))
    assert denial.denied_at == NOW - dt.timedelta(minutes=10)


def test_a_new_request_soon_after_a_denial_is_held_to_the_deniers_group() -> None:
    again = request("again")
    admitted = decide(again, world([denied_by_bob()]))
    assert admitted.status is not None
    hold = admitted.status.after_denial
    assert hold is not None
    assert (hold.request, hold.denied_by, hold.approvers.users, hold.approvers.groups) == (
        "first",
        "bob",
        ["bob"],
        ["sre"],
    )
    assert "and 1 approval from bob or group sre (after bob denied first at" in (
        admitted.status.message or ""
    )


def test_an_approver_outside_the_deniers_group_does_not_suffice() -> None:
    step = tally(request("again"), [denied_by_bob()], "carol")
    assert step.grant is None
    assert step.status is not None
    assert step.status.message is not None
    assert "after bob's denial: 0 of 1 approval" in step.status.message
    assert "AccessPolicy production: 1 of 1 approval (carol)" in step.status.message


def test_an_approver_of_the_deniers_group_lifts_the_hold() -> None:
    step = tally(request("again"), [denied_by_bob()], "carol", "dave")
    assert step.grant is not None
    assert [a.user for a in step.grant.spec.approvals] == ["carol", "dave"]
    # Alone, without the denial, carol's approval would have been enough.
    assert tally(request("again"), [], "carol").grant is not None


def test_the_denier_may_approve_the_new_request_alone() -> None:
    assert tally(request("again"), [denied_by_bob()], "bob").grant is not None


def test_a_denial_older_than_the_cooldown_holds_nothing() -> None:
    old = denied_by_bob(NOW - dt.timedelta(hours=1, seconds=1))
    assert tally(request("again"), [old], "carol").grant is not None


def test_a_denial_made_while_a_request_waits_holds_it_too() -> None:
    waiting = request("twin", created=NOW - dt.timedelta(minutes=30))
    later = denied_by_bob(NOW - dt.timedelta(minutes=5))
    step = tally(waiting, [later], "carol", admitted_before=True)
    assert step.grant is None
    assert step.status is not None and step.status.after_denial is not None
    assert [n.reason for n in step.notices] == ["HeldAfterDenial"]


def test_a_request_for_other_objects_is_not_held() -> None:
    other = request("other", {"verb": "exec", "names": ["web-1"]})
    assert tally(other, [denied_by_bob()], "carol").grant is not None
    delete = request("delete", {"verb": "delete", "resource": "pods", "names": ["web-0"]})
    assert tally(delete, [denied_by_bob()], "carol").grant is not None


def test_actions_overlap_on_verb_resource_and_a_shared_or_unnamed_object() -> None:
    def action(**fields: Any) -> Any:
        return request("x", fields).spec.actions[0]

    web0, web1 = action(verb="exec", names=["web-0"]), action(verb="exec", names=["web-1"])
    anything = action(verb="exec")
    assert overlaps(web0, web0) and overlaps(web0, anything) and overlaps(anything, web1)
    assert not overlaps(web0, web1)
    assert not overlaps(web0, action(verb="attach", names=["web-0"]))
