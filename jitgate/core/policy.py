"""Which AccessPolicy governs an action, and whether a request under it is acceptable.

Overlapping policies: every policy whose namespaces, actions and resources match an action
protects it, and the *strictest* of them governs — most required approvals first, then
self-approval disallowed before allowed, then the shortest maxDuration, then the policy
name. A permissive policy can therefore never weaken a strict one, and the order does not
depend on the order objects were listed in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from jitgate.core.api import AccessPolicy, AccessRequestSpec, NamespaceMatch, RequestedAction
from jitgate.core.durations import parse_duration
from jitgate.core.label_selectors import selector_matches
from jitgate.core.refusals import Refusal
from jitgate.core.vocabulary import CONNECT_VERBS, NAMESPACES, UNPROTECT_VERB, Verb
from jitgate.core.wire import Unreadable

# Identities never intercepted, whatever the policies say (DESIGN.md §3).
DEFAULT_EXEMPT_USERS: frozenset[str] = frozenset(
    {"system:kube-controller-manager", "system:kube-scheduler"}
)
DEFAULT_EXEMPT_GROUPS: frozenset[str] = frozenset(
    {"system:nodes", "system:serviceaccounts:kube-system"}
)


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str]


def _name(policy: AccessPolicy) -> str:
    return policy.metadata.name or ""


def strictness_key(policy: AccessPolicy) -> tuple[int, bool, dt.timedelta, str]:
    spec = policy.spec
    return (
        -spec.required_approvals,
        spec.allow_self_approval,
        parse_duration(spec.max_duration),
        _name(policy),
    )


def covers_namespace(policy: AccessPolicy, namespace: Namespace) -> bool:
    return _matches(policy.spec.namespaces, namespace)


def _matches(match: NamespaceMatch, namespace: Namespace) -> bool:
    if namespace.name in match.names:
        return True
    return match.selector is not None and selector_matches(match.selector, namespace.labels)


@dataclass(frozen=True)
class UnreadablePolicy:
    """An AccessPolicy stored in the cluster that does not validate (the CRD schema cannot
    express every rule of the model). What it protects is unknown, so it must fail closed
    wherever it might apply instead of silently protecting nothing."""

    name: str
    error: str
    namespaces: NamespaceMatch | None  # None when even its namespaces cannot be read

    @property
    def selects_by_label(self) -> bool:
        return self.namespaces is None or self.namespaces.selector is not None

    def may_cover(self, namespace: Namespace) -> bool:
        return self.namespaces is None or _matches(self.namespaces, namespace)


def unreadable_policy(raw: Mapping[str, Any], unreadable: Unreadable) -> UnreadablePolicy:
    """What can still be known about an AccessPolicy that failed validation."""
    spec = raw.get("spec")
    namespaces = spec.get("namespaces") if isinstance(spec, Mapping) else None
    try:
        match: NamespaceMatch | None = NamespaceMatch.model_validate(namespaces)
    except ValidationError:
        match = None
    return UnreadablePolicy(unreadable.name or "", unreadable.problem, match)


@dataclass(frozen=True)
class Policies:
    """An immutable snapshot of the AccessPolicies, by name.

    Policies stored in the cluster that do not validate are kept apart in `unreadable`: they
    are no policy for requests, but the decision path fails closed where they might apply.
    """

    by_name: Mapping[str, AccessPolicy]
    any_selector: bool  # whether any policy (readable or not) may select namespaces by label
    unreadable: Mapping[str, UnreadablePolicy]

    @classmethod
    def of(
        cls,
        policies: Iterable[AccessPolicy | UnreadablePolicy],
    ) -> Policies:
        by_name: dict[str, AccessPolicy] = {}
        unreadable: dict[str, UnreadablePolicy] = {}
        for policy in policies:
            if isinstance(policy, UnreadablePolicy):
                unreadable[policy.name] = policy
            else:
                by_name[policy.metadata.name or ""] = policy
        any_selector = any(p.spec.namespaces.selector is not None for p in by_name.values()) or any(
            p.selects_by_label for p in unreadable.values()
        )
        return cls(MappingProxyType(by_name), any_selector, MappingProxyType(unreadable))

    def all(self) -> list[AccessPolicy | UnreadablePolicy]:
        return [*self.by_name.values(), *self.unreadable.values()]


def covers_action(policy: AccessPolicy, verb: Verb, resource: str) -> bool:
    if verb == UNPROTECT_VERB:
        # Switching a policy's protection off would open every action it protects.
        return resource == NAMESPACES
    if verb not in policy.spec.actions:
        return False
    # exec, attach and portforward are pod subresources: the verb alone decides.
    return verb in CONNECT_VERBS or resource in policy.spec.resources


def is_exempt(policy: AccessPolicy, user: str, groups: Iterable[str]) -> bool:
    return policy.spec.exemptions.includes(user, frozenset(groups))


def governing_policy(
    policies: Iterable[AccessPolicy],
    namespace: Namespace,
    verb: Verb,
    resource: str,
    user: str | None = None,
    groups: Iterable[str] = (),
) -> AccessPolicy | None:
    """The strictest policy protecting this action for this caller, or None if unprotected.

    A caller exempted by one policy is still governed by any other that protects the action.
    """
    group_set = frozenset(groups)
    matching = [
        policy
        for policy in policies
        if covers_namespace(policy, namespace)
        and covers_action(policy, verb, resource)
        and not (user is not None and is_exempt(policy, user, group_set))
    ]
    if len(matching) < 2:  # the common case; the key parses a duration
        return matching[0] if matching else None
    return min(matching, key=strictness_key)


@dataclass(frozen=True)
class Exemptions:
    """Callers never intercepted on protected actions, whatever the policies say."""

    users: frozenset[str] = DEFAULT_EXEMPT_USERS
    groups: frozenset[str] = DEFAULT_EXEMPT_GROUPS

    def covers(self, user: str, groups: Iterable[str]) -> bool:
        return user in self.users or any(group in self.groups for group in groups)

    @classmethod
    def with_defaults(cls, users: Iterable[str] = (), groups: Iterable[str] = ()) -> Exemptions:
        """The built-in exemptions plus configured ones (`--exempt-user`, `--exempt-group`)."""
        return cls(
            DEFAULT_EXEMPT_USERS | frozenset(users), DEFAULT_EXEMPT_GROUPS | frozenset(groups)
        )


def may_request(policy: AccessPolicy, user: str, groups: Iterable[str]) -> bool:
    requesters = policy.spec.requesters
    return requesters.empty or requesters.includes(user, frozenset(groups))


def may_approve(policy: AccessPolicy, user: str, groups: Iterable[str]) -> bool:
    return policy.spec.approvers.includes(user, frozenset(groups))


def may_break_glass(policy: AccessPolicy, user: str, groups: Iterable[str]) -> bool:
    glass = policy.spec.break_glass
    return glass is not None and glass.includes(user, frozenset(groups))


def duration_limit(policy: AccessPolicy, *, break_glass: bool) -> tuple[dt.timedelta, str]:
    """The longest grant the policy allows, and how to name that limit in a message."""
    glass = policy.spec.break_glass
    if break_glass and glass is not None:
        return parse_duration(glass.max_duration), f"break-glass maxDuration {glass.max_duration}"
    return parse_duration(policy.spec.max_duration), f"maxDuration {policy.spec.max_duration}"


def grant_duration(spec: AccessRequestSpec, policy: AccessPolicy) -> dt.timedelta:
    """The requested duration, else the policy's default, never beyond the policy's limit."""
    limit, _ = duration_limit(policy, break_glass=spec.break_glass)
    return min(parse_duration(spec.duration or policy.spec.default_duration), limit)


@dataclass(frozen=True)
class Resolution:
    """A request the policy accepts: who governs it and for how long it would be granted."""

    policy: AccessPolicy
    duration: dt.timedelta
    required_approvals: int
    pending_timeout: dt.timedelta
    break_glass: bool


def _action_label(action: RequestedAction) -> str:
    return f"{action.verb} on {action.effective_resource}"


def resolve_request(
    policies: Iterable[AccessPolicy],
    namespace: Namespace,
    spec: AccessRequestSpec,
    user: str,
    groups: Iterable[str],
) -> Resolution | Refusal:
    """Decide which policy governs a request and whether its requester and duration fit."""
    policies = list(policies)
    group_set = frozenset(groups)
    governing: list[AccessPolicy] = []
    for action in spec.actions:
        policy = governing_policy(policies, namespace, action.verb, action.effective_resource)
        if policy is None:
            return Refusal(
                f"no AccessPolicy protects {_action_label(action)} in namespace "
                f"{namespace.name}, so there is nothing to request",
                "NoPolicy",
            )
        governing.append(policy)
    policy = min(governing, key=strictness_key)
    if not may_request(policy, user, group_set):
        return Refusal(
            f"user {user} is not a requester under AccessPolicy {_name(policy)}",
            "RequesterNotEligible",
            policy,
        )
    spec_policy = policy.spec
    if spec.break_glass and not may_break_glass(policy, user, group_set):
        return Refusal(
            f"user {user} may not use break-glass under AccessPolicy {_name(policy)}",
            "BreakGlassNotAllowed",
            policy,
        )
    limit, limit_text = duration_limit(policy, break_glass=spec.break_glass)
    duration = grant_duration(spec, policy)
    if spec.duration is not None and parse_duration(spec.duration) > limit:
        return Refusal(
            f"duration {spec.duration} exceeds the {limit_text} of AccessPolicy {_name(policy)}",
            "DurationTooLong",
            policy,
        )
    return Resolution(
        policy=policy,
        duration=duration,
        required_approvals=spec_policy.required_approvals,
        pending_timeout=parse_duration(spec_policy.pending_timeout),
        break_glass=spec.break_glass,
    )
