"""Several AccessPolicies governing one request: every one must be satisfied (DESIGN.md §2).

Run through the state machine the operator runs (`decide`): a new request is admitted, then
its approvals are tallied. The property: adding any policy never turns a refusal into an
approval, and never lets a request be approved by fewer or other approvers, for longer, or
by break-glass where it was not possible before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support.clocks import NOW

from jitgate.core.admission.annotations import check_annotation_request, check_review
from jitgate.core.admission.approvals import check_approval_append, spec_digest
from jitgate.core.admission.writes import Identity
from jitgate.core.api import AccessPolicy, AccessRequest, Approval
from jitgate.core.clock import format_time
from jitgate.core.durations import parse_duration
from jitgate.core.policy import Governing, Namespace
from jitgate.core.requests.annotations import REVOKE_ANNOTATION
from jitgate.core.requests.decide import decide
from jitgate.core.requests.step import World
from jitgate.core.requests.stored import read_request

PROD = Namespace("prod", {})
GROUPS = {
    "alice": ("developers",),
    "dave": ("developers", "oncall"),
    "bob": ("sre",),
    "carol": ("sre", "oncall"),
    "erin": ("security",),
}
PEOPLE = sorted(GROUPS)


def policy(name: str, **spec: Any) -> AccessPolicy:
    body = {"namespaces": {"names": ["prod"]}, "actions": ["exec"], **spec}
    return AccessPolicy.model_validate({"metadata": {"name": name}, "spec": body})


def new_request(requester: str, **spec: Any) -> AccessRequest:
    raw = {
        "metadata": {"name": "fix", "namespace": "prod", "uid": "u-1"},
        "spec": {
            "actions": [{"verb": "exec", "names": ["web-0"]}],
            "reason": "INC-1: the database is down",
            "requester": {"user": requester, "groups": list(GROUPS[requester])},
            **spec,
        },
    }
    parsed = read_request(raw)
    assert isinstance(parsed, AccessRequest)
    return parsed


def world(policies: list[AccessPolicy]) -> World:
    return World(now=NOW, policies=policies, namespace=PROD, retention=dt.timedelta(days=1))


def approval(request: AccessRequest, user: str, decision: str = "Approve") -> dict[str, Any]:
    return {
        "user": user,
        "groups": list(GROUPS[user]),
        "decision": decision,
        "time": format_time(NOW),
        "specDigest": spec_digest(request.spec),
    }


@dataclass(frozen=True)
class Outcome:
    phase: str  # the phase after admission and one tally: Denied, Pending or Approved
    reason: str | None = None
    approvers: tuple[str, ...] = ()  # the approval chain copied into the grant
    duration: dt.timedelta | None = None
    break_glass: bool = False
    status: dict[str, Any] | None = None


def run(policies: list[AccessPolicy], request: AccessRequest, decisions: list[Any]) -> Outcome:
    """Admit `request` under `policies`, then let the approvers decide in order."""
    admitted = decide(request, world(policies))
    assert admitted.status is not None
    status = admitted.status.to_patch()
    if admitted.grant is not None:
        grant = admitted.grant.spec
        return Outcome(
            "Approved", None, (), grant.expires_at - grant.not_before, grant.break_glass, status
        )
    if status["phase"] == "Denied":
        reason = next(c.reason for c in admitted.status.conditions)
        return Outcome("Denied", reason, status=status)
    raw = request.to_wire()
    raw["status"] = {**status, "approvals": decisions, "observedApprovals": 0}
    stored = read_request(raw)
    assert isinstance(stored, AccessRequest)
    step = decide(stored, world(policies))
    if step.grant is not None:
        grant = step.grant.spec
        return Outcome(
            "Approved",
            None,
            tuple(a.user or "" for a in grant.approvals),
            grant.expires_at - grant.not_before,
            grant.break_glass,
            status,
        )
    phase = step.status.phase if step.status is not None and step.status.phase else "Pending"
    return Outcome(phase, status=status)


# --------------------------------------------------------------------------- the attack

PRODUCTION = policy("production", approvers={"groups": ["sre"]}, maxDuration="1h")
# Shorter maxDuration, so "the strictest policy" used to be this one; its approvers and
# break-glass are the developers themselves.
TEAM = policy(
    "team-a",
    approvers={"groups": ["developers"]},
    maxDuration="30m",
    defaultDuration="10m",
    breakGlass={"groups": ["developers"], "maxDuration": "30m"},
)


def test_a_lax_second_policy_does_not_let_a_developer_break_the_glass() -> None:
    request = new_request("alice", breakGlass=True)
    alone = run([TEAM], request, [])
    assert (alone.phase, alone.break_glass) == ("Approved", True)  # as team-a alone allows
    both = run([PRODUCTION, TEAM], request, [])
    assert (both.phase, both.reason) == ("Denied", "BreakGlassNotAllowed")
    assert both.status is not None
    assert "may not use break-glass under AccessPolicy production" in both.status["message"]


def test_a_fellow_developer_alone_cannot_approve_where_production_also_governs() -> None:
    request = new_request("alice")
    by_dave = [approval(request, "dave")]
    assert run([TEAM], request, by_dave).phase == "Approved"
    both = run([PRODUCTION, TEAM], request, by_dave)
    assert both.phase == "Pending"
    assert both.status is not None
    assert both.status["policies"] == [
        {"name": "production", "requiredApprovals": 1},
        {"name": "team-a", "requiredApprovals": 1},
    ]
    assert "policy" not in both.status  # a reader knowing only `policy` finds none
    # An SRE alone does not satisfy team-a either: both policies' approvers are needed.
    assert run([PRODUCTION, TEAM], request, [approval(request, "bob")]).phase == "Pending"
    approved = run([PRODUCTION, TEAM], request, [*by_dave, approval(request, "bob")])
    assert approved.phase == "Approved"
    assert approved.approvers == ("dave", "bob")
    assert approved.duration == dt.timedelta(minutes=10)  # team-a's shorter default


def test_one_approval_counts_for_every_policy_naming_its_author() -> None:
    """carol is an SRE and on call: one approval of hers meets both policies' counts."""
    oncall = policy("oncall", approvers={"groups": ["oncall"]})
    request = new_request("alice")
    both = run([PRODUCTION, oncall], request, [approval(request, "carol")])
    assert (both.phase, both.approvers) == ("Approved", ("carol",))
    # ...but never twice towards one policy: two approvals still need two people.
    strict = policy("production", approvers={"groups": ["sre"]}, requiredApprovals=2)
    twice = [approval(request, "carol"), approval(request, "carol")]
    assert run([strict, oncall], request, twice).phase == "Pending"


def test_an_approver_of_any_governing_policy_may_deny() -> None:
    request = new_request("alice")
    denied = run([PRODUCTION, TEAM], request, [approval(request, "dave", "Deny")])
    assert denied.phase == "Denied"


def test_self_approval_counts_only_where_every_policy_allows_it() -> None:
    lax = policy("lax", approvers={"groups": ["developers"]}, allowSelfApproval=True)
    request = new_request("alice")
    mine = [approval(request, "alice")]
    assert run([lax], request, mine).phase == "Approved"
    strict = policy("strict", approvers={"groups": ["developers"]})
    assert run([lax, strict], request, mine).phase == "Pending"
    governing = Governing.of([lax, strict])
    why = check_approval_append(
        phase="Pending",
        old_approvals=[],
        new_approvals=[Approval.model_validate(mine[0])],
        requester="alice",
        who=Identity("alice", GROUPS["alice"]),
        governing=governing,
        digest_of_spec=spec_digest(request.spec),
    )
    assert why == (
        "alice requested this access and cannot approve it "
        "(AccessPolicy strict does not allow self-approval)"
    )


def test_the_webhook_refuses_an_approver_of_no_governing_policy() -> None:
    request = new_request("alice")
    entry = approval(request, "erin")
    why = check_approval_append(
        phase="Pending",
        old_approvals=[],
        new_approvals=[Approval.model_validate(entry)],
        requester="alice",
        who=Identity("erin", GROUPS["erin"]),
        governing=Governing.of([PRODUCTION, TEAM]),
        digest_of_spec=spec_digest(request.spec),
    )
    assert why == "erin is not an approver under any of AccessPolicies production and team-a"


def test_a_break_glass_review_needs_an_approver_of_every_governing_policy() -> None:
    glass = policy("glass", approvers={"groups": ["security"]}, breakGlass={"users": ["dave"]})
    both = Governing.of([PRODUCTION, glass])
    asked: dict[str, Any] = {
        "value": "true",
        "phase": "Approved",
        "break_glass": True,
        "requester": "dave",
        "governing": both,
    }
    assert check_review(**asked, who=Identity("bob", GROUPS["bob"])) == (
        "bob is not an approver under AccessPolicy glass, so cannot review this request"
    )
    both_groups = Identity("frank", ("sre", "security"))
    assert check_review(**asked, who=both_groups) is None
    # Cancelling or revoking only takes access away: an approver of either may.
    revoke = {"annotation": REVOKE_ANNOTATION, "phase": "Approved", "requester": "dave"}
    assert check_annotation_request(**revoke, who=Identity("bob", ("sre",)), governing=both) is None


def test_every_requester_list_and_the_smallest_limits_apply() -> None:
    sre_only = policy("sre-only", approvers={"groups": ["sre"]}, requesters={"groups": ["sre"]})
    refused = run([PRODUCTION, sre_only], new_request("alice"), [])
    assert (refused.phase, refused.reason) == ("Denied", "RequesterNotEligible")
    too_long = run([PRODUCTION, TEAM], new_request("alice", duration="45m"), [])
    assert (too_long.phase, too_long.reason) == ("Denied", "DurationTooLong")
    assert too_long.status is not None
    assert too_long.status["message"] == (
        "duration 45m is too long: access lasts at most 30m (AccessPolicy team-a); "
        "ask for --for 30m or less"
    )
    short = policy("short", approvers={"groups": ["sre"]}, pendingTimeout="5m")
    pending = run([PRODUCTION, short], new_request("alice"), [])
    assert pending.status is not None
    assert pending.status["pendingDeadline"] == format_time(NOW + dt.timedelta(minutes=5))


# ------------------------------------------------------------------------- the property

subjects = st.fixed_dictionaries(
    {
        "users": st.lists(st.sampled_from(PEOPLE), max_size=2, unique=True),
        "groups": st.lists(
            st.sampled_from(["developers", "sre", "oncall", "security"]), max_size=2, unique=True
        ),
    }
)
durations = st.sampled_from(["10m", "30m", "1h"])
anyone: st.SearchStrategy[dict[str, list[str]]] = st.just({"users": [], "groups": []})


# The property covers schedules and autoApprove rules too. NOW is a Saturday, 10:00 UTC: a
# window open all weekend, one closed that denies, one closed that asks for more approvals.
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]
SCHEDULES: list[dict[str, Any] | None] = [
    None,
    None,
    {"timeZone": "UTC", "windows": [{"days": ["Sat", "Sun"]}]},
    {
        "timeZone": "Europe/Berlin",
        "windows": [{"days": WEEKDAYS, "start": "09:00", "end": "17:00"}],
    },
    {
        "timeZone": "America/New_York",
        "windows": [{"days": WEEKDAYS}],
        "outsideWindow": {"action": "RequireApprovals", "approvals": 2},
    },
]
RULES: list[str | None] = [
    None,
    None,
    "true",
    "'oncall' in requester.groups",
    "requester.user == 'alice' && time.weekday == 'Sat'",
    "undefined_variable == 1",  # does not compile: approves nothing
]


@st.composite
def policies(draw: st.DrawFn, name: str) -> AccessPolicy:
    max_duration = draw(durations)
    glass = draw(st.none() | st.tuples(subjects, durations))
    spec: dict[str, Any] = {
        # Mostly anyone may request, so that most examples get as far as their approvals.
        "requesters": draw(st.one_of(anyone, anyone, subjects)),
        "approvers": draw(subjects.filter(lambda s: bool(s["users"] or s["groups"]))),
        "requiredApprovals": draw(st.integers(min_value=1, max_value=3)),
        "allowSelfApproval": draw(st.booleans()),
        "maxDuration": max_duration,
        "defaultDuration": draw(
            st.sampled_from(["5m", "10m", "30m", "1h"]).filter(
                lambda d: parse_duration(d) <= parse_duration(max_duration)
            )
        ),
        "pendingTimeout": draw(durations),
    }
    if glass is not None:
        spec["breakGlass"] = {**glass[0], "maxDuration": glass[1]}
    schedule = draw(st.sampled_from(SCHEDULES))
    if schedule is not None:
        spec["schedule"] = schedule
    rule = draw(st.sampled_from(RULES))
    if rule is not None:
        spec["autoApprove"] = {"rules": [{"name": "rule", "expression": rule}]}
    return policy(name, **spec)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "m", "z"]), min_size=1, max_size=3, unique=True).flatmap(
        lambda names: st.tuples(*(policies(n) for n in names))
    ),
    st.sampled_from(["b", "n", "y"]).flatmap(policies),
    st.sampled_from(PEOPLE),
    st.sampled_from([False, False, True]),
    st.sampled_from([None, "5m", "20m", "45m"]),
    st.lists(st.tuples(st.sampled_from(PEOPLE), st.booleans()), max_size=6),
)
def test_adding_a_policy_never_makes_access_easier(
    base: tuple[AccessPolicy, ...],
    added: AccessPolicy,
    requester: str,
    break_glass: bool,
    duration: str | None,
    decisions: list[tuple[str, bool]],
) -> None:
    request = new_request(
        requester, breakGlass=break_glass, **({"duration": duration} if duration else {})
    )
    entries = [approval(request, user, "Approve" if ok else "Deny") for user, ok in decisions]
    before = run(list(base), request, entries)
    after = run([*base, added], request, entries)
    if before.phase == "Denied" and before.reason is not None:
        assert after.phase == "Denied"  # refused at admission stays refused
    if after.phase != "Approved":
        return
    assert before.phase == "Approved"  # never a refusal or a wait turned into an approval
    assert after.duration is not None and before.duration is not None
    assert after.duration <= before.duration
    assert not after.break_glass or before.break_glass
    if after.break_glass:
        return
    # The approvers that satisfied every policy with the new one also satisfy the old ones:
    # the new policy never lets fewer or other approvers suffice.
    chain = [e for e in entries if e["user"] in after.approvers and e["decision"] == "Approve"]
    chain = [next(e for e in chain if e["user"] == user) for user in after.approvers]
    assert run(list(base), request, chain).phase == "Approved"


def test_recording_is_required_if_any_policy_requires_it_and_the_shortest_idle_applies() -> None:
    plain = policy("plain", approvers={"groups": ["sre"]})
    optional = policy("optional", approvers={"groups": ["sre"]}, sessions={"idleTimeout": "30m"})
    required = policy(
        "required",
        approvers={"groups": ["sre"]},
        sessions={"recording": "Required", "idleTimeout": "1h"},
    )
    alone = Governing.of([plain])
    assert alone is not None
    assert (alone.recording_required, alone.idle_timeout) == (False, None)
    both = Governing.of([optional, required])
    assert both is not None
    assert both.recording_required
    assert both.idle_timeout == dt.timedelta(minutes=30)
    # Adding a policy that says nothing about sessions loosens neither.
    three = Governing.of([plain, optional, required])
    assert three is not None
    assert (three.recording_required, three.idle_timeout) == (True, dt.timedelta(minutes=30))
