"""A new AccessRequest is refused at admission when the operator would deny it at once, or when
a name could never match; named pods that do not exist earn a warning."""

from __future__ import annotations

from typing import Any

import pytest
from support import objects
from support.clocks import NOW

from jitgate.core.admission.access_requests import (
    Scope,
    check_access_request,
    missing_pods_warning,
)
from jitgate.core.admission.readiness import NotReady
from jitgate.core.admission.writes import Identity, Write
from jitgate.core.api import AccessPolicy, AccessRequestSpec
from jitgate.core.policy import Namespace, Policies, UnreadablePolicy

ALICE = Identity("alice", ("developers",))
PROD = Namespace("prod", {})


def scope_of(*policies: AccessPolicy | UnreadablePolicy, namespace: Namespace = PROD) -> Any:
    def lookup(name: str) -> Scope:
        assert name == namespace.name
        return Scope(Policies.of(policies), namespace)

    return lookup


def not_ready(name: str) -> Scope:
    raise NotReady()


def new_request(namespace: str = "prod", **spec: Any) -> Write:
    obj = objects.access_request(
        namespace=namespace, requester={"user": "alice", "groups": ["developers"]}, **spec
    )
    return Write("CREATE", ALICE, obj, None)


def refusal(write: Write, scope: Any) -> tuple[str, str] | None:
    refused = check_access_request(
        write, operator_user="jitgate-operator", policy=lambda _: None, scope=scope, now=NOW
    )
    return (refused.reason, refused.message) if refused else None


def test_a_request_the_policies_accept_is_admitted() -> None:
    assert refusal(new_request(duration="1h"), scope_of(objects.policy_model())) is None


def test_a_duration_above_the_smallest_maximum_names_it_and_the_policy() -> None:
    short = objects.policy_model("short", maxDuration="30m")
    assert refusal(new_request(duration="10h"), scope_of(objects.policy_model(), short)) == (
        "DurationTooLong",
        "duration 10h is too long: access lasts at most 30m (AccessPolicy short); "
        "ask for --for 30m or less",
    )


def test_break_glass_is_held_to_the_break_glass_maximum() -> None:
    glass = {"users": ["alice"], "maxDuration": "20m"}
    policy = objects.policy_model(breakGlass=glass)
    assert refusal(new_request(duration="1h", breakGlass=True), scope_of(policy)) == (
        "DurationTooLong",
        "duration 1h is too long: break-glass access lasts at most 20m "
        "(AccessPolicy production); ask for --for 20m or less",
    )


def test_a_break_glass_reason_shorter_than_the_longest_minimum_is_refused_naming_it() -> None:
    default = objects.policy_model(breakGlass={"users": ["alice"]})
    strict = objects.policy_model("strict", breakGlass={"users": ["alice"], "minReasonLength": 40})
    short = new_request(breakGlass=True, reason="  db down  ")
    assert refusal(short, scope_of(default)) == (
        "BreakGlassReasonTooShort",
        "a break-glass reason needs at least 20 characters (AccessPolicy production), not 7: "
        "say what is broken and why it cannot wait for an approval; every approver is told",
    )
    twenty = "x" * 20
    assert refusal(new_request(breakGlass=True, reason=twenty), scope_of(default)) is None
    refused = refusal(new_request(breakGlass=True, reason=twenty), scope_of(default, strict))
    assert refused is not None
    assert refused[0] == "BreakGlassReasonTooShort"
    assert "at least 40 characters (AccessPolicy strict), not 20" in refused[1]
    # An ordinary request is not held to the break-glass minimum.
    assert refusal(new_request(reason="db down"), scope_of(strict)) is None


def test_a_namespace_no_policy_covers_is_refused_naming_action_and_namespace() -> None:
    assert refusal(
        new_request("dev"), scope_of(objects.policy_model(), namespace=Namespace("dev", {}))
    ) == (
        "NoPolicy",
        "no AccessPolicy protects exec on pods in namespace dev, so there is nothing to request",
    )


def test_a_requester_the_policy_does_not_allow_is_refused_naming_it() -> None:
    policy = objects.policy_model(requesters={"groups": ["sre"]})
    assert refusal(new_request(), scope_of(policy)) == (
        "RequesterNotEligible",
        "user alice is not a requester under AccessPolicy production",
    )


def test_an_invalid_policy_that_may_govern_the_namespace_refuses() -> None:
    broken = UnreadablePolicy("broken", "spec.maxDuration: bad", None)
    found = refusal(new_request(), scope_of(objects.policy_model(), broken))
    assert found is not None and found[0] == "PolicyInvalid"
    assert found[1].startswith("AccessPolicy broken is invalid (spec.maxDuration: bad)")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "pod/web-0",
            "names are object names without a kind: write web-0, not pod/web-0; "
            "the action's resource says the kind",
        ),
        (
            "deploy/web",
            "names are object names without a kind: write web, not deploy/web; "
            "the action's resource says the kind",
        ),
        ("a/b", "names are object names, which never contain '/': a/b cannot match one"),
    ],
)
def test_a_name_with_a_kind_is_refused_before_any_policy_is_read(name: str, message: str) -> None:
    action = {"verb": "exec", "names": [name]}
    # Not ready: the name is refused all the same, since it needs no policy.
    assert refusal(new_request(actions=[action]), not_ready) == ("Invalid", message)


def test_policy_checks_fail_closed_before_the_policies_are_known() -> None:
    assert refusal(new_request(), not_ready) == (
        "NotReady",
        "jitgate is not ready: grant cache not synced; retry in a moment",
    )


def spec(*names: str, verb: str = "exec", resource: str | None = None) -> AccessRequestSpec:
    action: dict[str, Any] = {"verb": verb, "names": list(names)}
    if resource:
        action["resource"] = resource
    return AccessRequestSpec.model_validate({"actions": [action], "reason": "INC-1"})


def test_missing_pods_are_named_with_up_to_five_that_exist() -> None:
    pods = ["web-0", "web-1", "web-2", "db-0", "db-1", "cache-0"]
    assert missing_pods_warning(spec("web-9", "web-0"), "prod", pods) == (
        "no pod web-9 in namespace prod; check the name "
        "(pods there: cache-0, db-0, db-1, web-0, web-1, ...)"
    )
    assert missing_pods_warning(spec("a", "b"), "prod", []) == (
        "no pods a, b in namespace prod, which has no pods; check the name"
    )


def test_no_warning_when_every_named_pod_exists_or_no_pod_is_named() -> None:
    assert missing_pods_warning(spec("web-0"), "prod", ["web-0"]) is None
    assert missing_pods_warning(spec(), "prod", []) is None
    assert (
        missing_pods_warning(spec("web", verb="delete", resource="deployments.apps"), "prod", [])
        is None
    )
