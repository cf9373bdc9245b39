import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import objects

from jitgate.core import wire
from jitgate.core.api import AccessPolicy, AccessRequestSpec, LabelSelector
from jitgate.core.label_selectors import selector_matches
from jitgate.core.policy import (
    Exemptions,
    Governing,
    Namespace,
    Policies,
    Resolution,
    UnreadablePolicy,
    governing_policies,
    may_approve,
    may_break_glass,
    resolve_request,
    unreadable_policy,
)
from jitgate.core.refusals import Refusal
from jitgate.core.vocabulary import VERBS

PROD = Namespace("prod", {"jitgate.dev/protected": "true", "tier": "prod"})
DEV = Namespace("dev", {"tier": "dev"})
PolicyFactory = Callable[..., AccessPolicy]


def spec(**fields: object) -> AccessRequestSpec:
    base: dict[str, object] = {
        "actions": [{"verb": "exec", "names": ["web-0"]}],
        "reason": "INC-1: the database is down",
    }
    base.update(fields)
    return AccessRequestSpec.model_validate(base)


def test_namespace_by_name_and_by_selector(policy_factory: PolicyFactory) -> None:
    by_name = policy_factory("by-name", namespaces={"names": ["prod"]})
    by_label = policy_factory(
        "by-label",
        namespaces={
            "selector": {
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["prod", "staging"]}
                ]
            }
        },
    )
    assert governing_policies([by_name], PROD, "exec", "pods") == Governing((by_name,))
    assert governing_policies([by_label], PROD, "exec", "pods") == Governing((by_label,))
    assert governing_policies([by_name, by_label], DEV, "exec", "pods") is None


def test_action_and_resource_must_be_protected(policy_factory: PolicyFactory) -> None:
    policy = policy_factory(actions=["exec", "delete"], resources=["deployments.apps"])
    alone = Governing((policy,))
    assert governing_policies([policy], PROD, "exec", "pods") == alone
    assert governing_policies([policy], PROD, "attach", "pods") is None
    assert governing_policies([policy], PROD, "delete", "deployments.apps") == alone
    assert governing_policies([policy], PROD, "delete", "pods") is None


def test_every_overlapping_policy_governs_in_name_order(policy_factory: PolicyFactory) -> None:
    lax = policy_factory("a-lax", requiredApprovals=1, allowSelfApproval=True)
    strict = policy_factory("z-strict", requiredApprovals=2)
    short = policy_factory("m-short", requiredApprovals=2, maxDuration="30m")
    for listed in ([lax, strict, short], [short, strict, lax]):
        governing = governing_policies(listed, PROD, "exec", "pods")
        assert governing is not None
        assert governing.names == ("a-lax", "m-short", "z-strict")


def test_exemption_in_one_policy_does_not_escape_another(policy_factory: PolicyFactory) -> None:
    exempting = policy_factory("gitops", exemptions={"users": ["argocd"]})
    other = policy_factory("other")
    assert governing_policies([exempting], PROD, "delete", "pods", "argocd", ()) is None
    assert governing_policies([exempting, other], PROD, "delete", "pods", "argocd", ()) == (
        Governing((other,))
    )


def test_default_exemptions() -> None:
    defaults = Exemptions()
    assert defaults.covers("system:node:n1", ["system:nodes"])
    assert defaults.covers("system:kube-scheduler", [])
    assert defaults.covers(
        "system:serviceaccount:kube-system:x", ["system:serviceaccounts:kube-system"]
    )
    assert Exemptions.with_defaults(users=["sa"]).covers("sa", [])
    assert not defaults.covers("sa", [])
    assert not defaults.covers("alice", ["developers"])


def test_resolution_uses_default_duration_and_policy_threshold(
    policy_factory: PolicyFactory,
) -> None:
    policy = policy_factory(requiredApprovals=2, defaultDuration="10m", pendingTimeout="30m")
    result = resolve_request([policy], PROD, spec(), "alice", ["developers"])
    assert isinstance(result, Resolution)
    assert result.governing == Governing((policy,))
    assert result.duration == dt.timedelta(minutes=10)
    assert result.pending_timeout == dt.timedelta(minutes=30)


@pytest.mark.parametrize(
    ("policy_spec", "request_spec", "user", "reason"),
    [
        ({}, {"actions": [{"verb": "exec"}]}, "alice", None),
        ({"namespaces": {"names": ["other"]}}, {}, "alice", "NoPolicy"),
        ({"requesters": {"groups": ["oncall"]}}, {}, "alice", "RequesterNotEligible"),
        ({"requesters": {"users": ["alice"]}}, {}, "alice", None),
        ({"maxDuration": "30m"}, {"duration": "31m"}, "alice", "DurationTooLong"),
        ({"maxDuration": "30m"}, {"duration": "30m"}, "alice", None),
        ({}, {"breakGlass": True}, "alice", "BreakGlassNotAllowed"),
        ({"breakGlass": {"users": ["alice"]}}, {"breakGlass": True}, "alice", None),
        (
            {"breakGlass": {"users": ["alice"], "maxDuration": "10m"}},
            {"breakGlass": True, "duration": "20m"},
            "alice",
            "DurationTooLong",
        ),
    ],
)
def test_request_resolution(
    policy_factory: PolicyFactory,
    policy_spec: dict[str, object],
    request_spec: dict[str, object],
    user: str,
    reason: str | None,
) -> None:
    result = resolve_request([policy_factory(**policy_spec)], PROD, spec(**request_spec), user, [])
    if reason is None:
        assert isinstance(result, Resolution)
    else:
        assert isinstance(result, Refusal)
        assert result.reason == reason
        assert result.message  # a sentence the requester will read


def test_rejection_messages_name_the_limit(policy_factory: PolicyFactory) -> None:
    result = resolve_request(
        [policy_factory(maxDuration="30m")], PROD, spec(duration="2h"), "alice", []
    )
    assert isinstance(result, Refusal)
    assert result.message == (
        "duration 2h is too long: access lasts at most 30m (AccessPolicy production); "
        "ask for --for 30m or less"
    )


def test_a_request_spanning_policies_is_governed_by_all_of_them(
    policy_factory: PolicyFactory,
) -> None:
    exec_policy = policy_factory("exec-only", actions=["exec"], requiredApprovals=1)
    delete_policy = policy_factory(
        "deletes", actions=["delete"], resources=["pods"], requiredApprovals=2
    )
    result = resolve_request(
        [exec_policy, delete_policy],
        PROD,
        spec(actions=[{"verb": "exec"}, {"verb": "delete", "resource": "pods"}]),
        "alice",
        [],
    )
    assert isinstance(result, Resolution)
    assert result.governing.names == ("deletes", "exec-only")


def test_approver_and_break_glass_eligibility(policy_factory: PolicyFactory) -> None:
    policy = policy_factory(
        approvers={"users": ["carol"], "groups": ["sre"]}, breakGlass={"groups": ["oncall"]}
    )
    assert may_approve(policy, "bob", ["sre"])
    assert may_approve(policy, "carol", [])
    assert not may_approve(policy, "alice", ["developers"])
    assert may_break_glass(policy, "dave", ["oncall"])
    assert not may_break_glass(policy_factory(), "dave", ["oncall"])


labels = st.dictionaries(
    st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y", "z"]), max_size=3
)


@given(labels, labels)
def test_match_labels_is_subset_semantics(selector: dict[str, str], have: dict[str, str]) -> None:
    expected = all(have.get(key) == value for key, value in selector.items())
    assert selector_matches(LabelSelector(match_labels=selector), have) == expected


@given(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]), labels)
def test_match_expressions_follow_kubernetes(operator: str, have: dict[str, str]) -> None:
    values = ["x"] if operator in ("In", "NotIn") else []
    selector = LabelSelector.model_validate(
        {"matchExpressions": [{"key": "a", "operator": operator, "values": values}]}
    )
    expected = {
        "In": have.get("a") == "x",
        "NotIn": have.get("a") != "x",
        "Exists": "a" in have,
        "DoesNotExist": "a" not in have,
    }[operator]
    assert selector_matches(selector, have) == expected


def test_grant_duration_defaults_and_clamps_to_the_policy(policy_factory: PolicyFactory) -> None:
    policy = policy_factory(
        maxDuration="30m",
        defaultDuration="10m",
        breakGlass={"users": ["alice"], "maxDuration": "5m"},
    )
    alone = Governing((policy,))
    assert alone.grant_duration(spec()) == dt.timedelta(minutes=10)
    assert alone.grant_duration(spec(duration="20m")) == dt.timedelta(minutes=20)
    # A policy tightened after the request was accepted still caps the grant.
    assert alone.grant_duration(spec(duration="2h")) == dt.timedelta(minutes=30)
    assert alone.grant_duration(spec(breakGlass=True)) == dt.timedelta(minutes=5)


def _broken(raw: dict[str, Any]) -> UnreadablePolicy:
    unreadable = wire.read(AccessPolicy, raw)
    assert isinstance(unreadable, wire.Unreadable)
    return unreadable_policy(raw, unreadable)


def test_an_unreadable_policy_may_cover_what_its_namespaces_name() -> None:
    raw: dict[str, Any] = {
        "apiVersion": "jitgate.dev/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": {"name": "broken"},
        "spec": {
            "namespaces": {"names": ["prod"], "selector": {"matchLabels": {"tier": "dev"}}},
            "actions": ["exec"],
            "approvers": {"groups": ["sre"]},
            "maxDuration": "1h",
            "defaultDuration": "2h",
        },
    }
    broken = _broken(raw)
    assert broken.error == "spec: defaultDuration must not exceed maxDuration"
    assert broken.may_cover(PROD) and broken.may_cover(DEV)
    assert not broken.may_cover(Namespace("qa", {}))
    assert broken.selects_by_label


@pytest.mark.parametrize(
    "namespaces",
    [
        {"selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]}},
        "prod",
        None,
    ],
)
def test_an_unreadable_namespace_match_may_cover_every_namespace(namespaces: object) -> None:
    raw = {"metadata": {"name": "broken"}, "spec": {"namespaces": namespaces}}
    broken = _broken(raw)
    assert broken.namespaces is None
    assert broken.may_cover(Namespace("anything", {})) and broken.selects_by_label


_SOME = st.sampled_from
_names = st.lists(_SOME(["prod", "dev", "ops"]), max_size=2, unique=True)
_subjects = st.fixed_dictionaries(
    {
        "users": st.lists(_SOME(["alice", "argocd"]), max_size=2, unique=True),
        "groups": st.lists(_SOME(["sre", "dev", "ci"]), max_size=2, unique=True),
    }
)
_selector = st.none() | st.fixed_dictionaries(
    {"matchLabels": labels},
    optional={
        "matchExpressions": st.lists(
            st.fixed_dictionaries(
                {"key": _SOME(["a", "b"]), "operator": _SOME(["Exists", "DoesNotExist"])}
            )
            | st.fixed_dictionaries(
                {
                    "key": _SOME(["a", "b"]),
                    "operator": _SOME(["In", "NotIn"]),
                    "values": st.lists(_SOME(["x", "y"]), min_size=1, max_size=2, unique=True),
                }
            ),
            max_size=2,
        )
    },
)
_policy = st.builds(
    lambda name, names, selector, actions, resources, exemptions: objects.policy_model(
        name,
        namespaces={"names": names, **({"selector": selector} if selector is not None else {})},
        actions=actions,
        resources=resources,
        exemptions=exemptions,
    ),
    _SOME(["a-policy", "b-policy", "c-policy"]),
    _names,
    _selector,
    st.lists(_SOME(objects.ALL_VERBS), min_size=1, max_size=5, unique=True),
    st.lists(
        _SOME(["pods", "deployments.apps", "jobs.batch"]), min_size=1, max_size=3, unique=True
    ),
    _subjects,
)


@given(
    policies=st.lists(_policy, max_size=4),
    namespace=_SOME(["prod", "dev", "ops"]),
    have=labels,
    verb=_SOME(VERBS),
    resource=_SOME(["pods", "deployments.apps", "jobs.batch", "namespaces"]),
    user=_SOME(["alice", "argocd", "bob"]),
    groups=st.lists(_SOME(["sre", "dev", "ci"]), max_size=3, unique=True),
)
def test_a_snapshot_finds_the_governing_policies_as_the_policies_themselves_do(
    policies: list[AccessPolicy],
    namespace: str,
    have: dict[str, str],
    verb: Any,
    resource: str,
    user: str,
    groups: list[str],
) -> None:
    """The decision path asks `Policies.governing` (each policy's `Protection`, computed once
    per snapshot): it must name exactly the policies `governing_policies` names."""
    snapshot = Policies.of(policies)
    expected = governing_policies(
        snapshot.by_name.values(), Namespace(namespace, have), verb, resource, user, groups
    )
    found = snapshot.governing(namespace, have, verb, resource, user, tuple(groups))
    assert found == expected
