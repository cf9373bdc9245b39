"""Which AccessPolicies govern an action, and whether a request under them is acceptable.

Overlapping policies (DESIGN.md §2): every policy whose namespaces, actions and resources
match an action governs it, and *every one of them must be satisfied* (`Governing`):

* the requester must be allowed by each;
* each policy's `requiredApprovals` must be met by distinct approvers that policy names.
  One person's approval counts towards every governing policy that names them an approver
  (each policy is checked exactly as it would be alone, so no policy's author is surprised);
  it never counts twice towards one policy;
* self-approval counts, and break-glass is possible, only when every governing policy allows
  it (break-glass: the requester is in each policy's `breakGlass`, with a reason at least as
  long as the longest `breakGlass.minReasonLength`);
* the smallest limit wins for every duration: `maxDuration` (or each `breakGlass.maxDuration`
  for an emergency grant), `defaultDuration` and `pendingTimeout`;
* sessions: recording is Required when any governing policy requires it, and the smallest
  `sessions.idleTimeout` applies;
* an approver of any governing policy may deny (each policy's approvers can veto), while a
  break-glass review must come from an approver of every governing policy.
* every schedule must be satisfied (`Window`): outside one policy's window with
  `outsideWindow: Deny` nothing is granted and no grant authorizes; outside one with
  `RequireApprovals` that policy needs its larger count, and only a grant that met it
  authorizes there. A grant approved inside the windows ends when the first of them closes.
  Break-glass grants are not bound by windows (an emergency does not wait for office hours;
  they are flagged for review either way).

Adding a policy therefore only ever adds conditions: it never turns a refusal into an
approval and never lets fewer or other approvers suffice (tests/core/test_composition.py).
The order of the policies is by name, never the order objects were listed in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from jitgate.core.api import (
    AccessPolicy,
    AccessRequestSpec,
    LabelSelector,
    NamespaceMatch,
    RequestedAction,
)
from jitgate.core.durations import format_duration, parse_duration
from jitgate.core.label_selectors import selector_matches
from jitgate.core.refusals import Refusal
from jitgate.core.schedule import WindowState, describe, state
from jitgate.core.vocabulary import CONNECT_VERBS, NAMESPACES, UNPROTECT_VERB, Verb
from jitgate.core.wire import Unreadable

# Identities never intercepted, whatever the policies say (DESIGN.md §3).
DEFAULT_EXEMPT_USERS: frozenset[str] = frozenset(
    {"system:kube-controller-manager", "system:kube-scheduler"}
)
DEFAULT_EXEMPT_GROUPS: frozenset[str] = frozenset(
    {"system:nodes", "system:serviceaccounts:kube-system"}
)


# How far ahead a request's startAt may be where a policy does not say (maxStartAhead).
START_AHEAD = dt.timedelta(days=7)


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str]


def _name(policy: AccessPolicy) -> str:
    return policy.metadata.name or ""


def covers_namespace(policy: AccessPolicy, namespace: Namespace) -> bool:
    return _matches(policy.spec.namespaces, namespace)


def _matches(match: NamespaceMatch, namespace: Namespace) -> bool:
    return _names_or_selects(match.names, match.selector, namespace.name, namespace.labels)


def _names_or_selects(
    names: Collection[str], selector: LabelSelector | None, name: str, labels: Mapping[str, str]
) -> bool:
    """The namespace rule, on a policy's lists or on its `Protection`'s sets."""
    if name in names:
        return True
    return selector is not None and selector_matches(selector, labels)


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

    def refusing_requests_in(self, namespace: Namespace) -> Refusal:
        """Why no request in `namespace`, which this policy may cover, is decided."""
        return Refusal(
            f"AccessPolicy {self.name} is invalid ({self.error}) and may govern namespace "
            f"{namespace.name}; no request there is decided until an admin fixes it",
            "PolicyInvalid",
        )


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
    # What the decision path asks of each readable policy, computed once per snapshot.
    protections: tuple[Protection, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        protections = tuple(Protection.of(policy) for policy in self.by_name.values())
        object.__setattr__(self, "protections", protections)

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

    def governing(
        self,
        namespace: str,
        labels: Mapping[str, str],
        verb: Verb,
        resource: str,
        user: str,
        groups: tuple[str, ...],
    ) -> Governing | None:
        """`governing_policies` of these policies for this caller, from their `protections`:
        the decision path's (tests/core/test_policy.py checks that the two agree)."""
        matching = [
            protection
            for protection in self.protections
            if protection.governs(namespace, labels, verb, resource, user, groups)
        ]
        if len(matching) == 1:  # the common case: the policy's own Governing, made once
            return matching[0].alone
        return _composed([protection.policy for protection in matching])


def covers_action(policy: AccessPolicy, verb: Verb, resource: str) -> bool:
    return _action_covered(policy.spec.actions, policy.spec.resources, verb, resource)


def _action_covered(
    verbs: Collection[str], resources: Collection[str], verb: Verb, resource: str
) -> bool:
    """The action rule, on a policy's lists or on its `Protection`'s sets."""
    if verb == UNPROTECT_VERB:
        # Switching a policy's protection off would open every action it protects.
        return resource == NAMESPACES
    if verb not in verbs:
        return False
    # exec, attach and portforward are pod subresources: the verb alone decides.
    return verb in CONNECT_VERBS or resource in resources


def is_exempt(policy: AccessPolicy, user: str, groups: Iterable[str]) -> bool:
    return policy.spec.exemptions.includes(user, frozenset(groups))


def governing_policies(
    policies: Iterable[AccessPolicy],
    namespace: Namespace,
    verb: Verb,
    resource: str,
    user: str | None = None,
    groups: Iterable[str] = (),
) -> Governing | None:
    """Every policy protecting this action for this caller, or None if it is unprotected.

    A caller exempted by one policy is still governed by any other that protects the action.
    """
    group_set = frozenset(groups)
    return _composed(
        [
            policy
            for policy in policies
            if covers_namespace(policy, namespace)
            and covers_action(policy, verb, resource)
            and not (user is not None and is_exempt(policy, user, group_set))
        ]
    )


def _composed(matching: list[AccessPolicy]) -> Governing | None:
    if len(matching) < 2:  # the common case: no dictionary, no sort
        return Governing((matching[0],)) if matching else None
    return Governing.of(matching)


@dataclass(frozen=True, slots=True)
class Protection:
    """What the decision path asks of one policy, with its lists made sets once per `Policies`
    snapshot: whether it governs an action for a caller, that is `covers_action`,
    `covers_namespace` and not `is_exempt`, in one call instead of six on every request."""

    policy: AccessPolicy
    verbs: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]
    selector: LabelSelector | None
    exempt_users: frozenset[str]
    exempt_groups: frozenset[str]
    alone: Governing  # the policy governing by itself

    @classmethod
    def of(cls, policy: AccessPolicy) -> Protection:
        spec = policy.spec
        return cls(
            policy,
            frozenset(spec.actions),
            frozenset(spec.resources),
            frozenset(spec.namespaces.names),
            spec.namespaces.selector,
            frozenset(spec.exemptions.users),
            frozenset(spec.exemptions.groups),
            Governing((policy,)),
        )

    def governs(
        self,
        namespace: str,
        labels: Mapping[str, str],
        verb: Verb,
        resource: str,
        user: str,
        groups: tuple[str, ...],
    ) -> bool:
        # The action first: it rules out most policies that do not govern.
        if not _action_covered(self.verbs, self.resources, verb, resource):
            return False
        if not _names_or_selects(self.names, self.selector, namespace, labels):
            return False
        return user not in self.exempt_users and self.exempt_groups.isdisjoint(groups)


@dataclass(frozen=True)
class Exemptions:
    """Callers never intercepted on protected actions, whatever the policies say."""

    users: frozenset[str] = DEFAULT_EXEMPT_USERS
    groups: frozenset[str] = DEFAULT_EXEMPT_GROUPS

    def covers(self, user: str, groups: Iterable[str]) -> bool:
        return user in self.users or not self.groups.isdisjoint(groups)

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


def _limit(policy: AccessPolicy, *, break_glass: bool) -> tuple[dt.timedelta, str]:
    glass = policy.spec.break_glass
    if break_glass and glass is not None:
        return parse_duration(glass.max_duration), f"break-glass maxDuration {glass.max_duration}"
    return parse_duration(policy.spec.max_duration), f"maxDuration {policy.spec.max_duration}"


def describe_policies(names: Sequence[str]) -> str:
    """`AccessPolicy production`, `AccessPolicies production and team-a`."""
    if len(names) == 1:
        return f"AccessPolicy {names[0]}"
    return f"AccessPolicies {', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class Governing:
    """The AccessPolicies that together govern an action or a request, composed as the module
    docstring says: every one of them must be satisfied. Never empty; ordered by name."""

    policies: tuple[AccessPolicy, ...]

    @classmethod
    def of(cls, policies: Iterable[AccessPolicy]) -> Governing | None:
        by_name = {_name(policy): policy for policy in policies}
        return cls(tuple(by_name[name] for name in sorted(by_name))) if by_name else None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(_name(policy) for policy in self.policies)

    @property
    def scheduled(self) -> bool:
        """Whether any of them has a schedule (the decision path skips windows otherwise)."""
        for policy in self.policies:  # noqa: SIM110 - a loop, not any(): every decision asks
            if policy.spec.schedule is not None:
                return True
        return False

    def describe(self) -> str:
        return describe_policies(self.names)

    def refusing_requester(self, user: str, groups: Iterable[str]) -> AccessPolicy | None:
        """The first policy that does not allow `user` to request, or None when all do."""
        group_set = frozenset(groups)
        return next((p for p in self.policies if not may_request(p, user, group_set)), None)

    def refusing_break_glass(self, user: str, groups: Iterable[str]) -> AccessPolicy | None:
        """The first policy under which `user` may not use break-glass, or None."""
        group_set = frozenset(groups)
        return next((p for p in self.policies if not may_break_glass(p, user, group_set)), None)

    def refusing_self_approval(self) -> AccessPolicy | None:
        """The first policy that does not count a requester's own approval, or None."""
        return next((p for p in self.policies if not p.spec.allow_self_approval), None)

    def approving(self, user: str, groups: Iterable[str]) -> tuple[AccessPolicy, ...]:
        """The governing policies that name `user` an approver."""
        group_set = frozenset(groups)
        return tuple(p for p in self.policies if may_approve(p, user, group_set))

    def break_glass_reason_minimum(self) -> tuple[int, AccessPolicy | None]:
        """The longest `breakGlass.minReasonLength` of the policies, and the policy that sets
        it (None when no policy has break-glass)."""
        glass = [
            (p.spec.break_glass.min_reason_length, p) for p in self.policies if p.spec.break_glass
        ]
        if not glass:
            return 0, None
        return max(glass, key=lambda item: item[0])

    def duration_limit(self, *, break_glass: bool) -> tuple[dt.timedelta, str, AccessPolicy]:
        """The longest grant every policy allows, how to name that limit in a message, and
        the policy that sets it (the first by name among equals)."""
        return min(
            ((*_limit(p, break_glass=break_glass), p) for p in self.policies),
            key=lambda item: item[0],
        )

    @property
    def default_duration(self) -> str:
        """The shortest `defaultDuration`, as its policy spells it (never above any
        `maxDuration`, since each policy's default is within its own maximum)."""
        return min((p.spec.default_duration for p in self.policies), key=parse_duration)

    @property
    def pending_timeout(self) -> dt.timedelta:
        return min(parse_duration(p.spec.pending_timeout) for p in self.policies)

    @property
    def recording_required(self) -> bool:
        """Whether exec, attach and port-forward must go through the recording gateway."""
        for policy in self.policies:  # a loop, not any(): every exec, attach and port-forward asks
            sessions = policy.spec.sessions
            if sessions is not None and sessions.recording == "Required":
                return True
        return False

    @property
    def idle_timeout(self) -> dt.timedelta | None:
        """The shortest `sessions.idleTimeout` of the governing policies, None when none sets
        one."""
        limits = [
            parse_duration(p.spec.sessions.idle_timeout)
            for p in self.policies
            if p.spec.sessions is not None and p.spec.sessions.idle_timeout is not None
        ]
        return min(limits, default=None)

    @property
    def max_start_ahead(self) -> dt.timedelta:
        """How far ahead every policy lets a request's start be scheduled."""
        return min(
            parse_duration(p.spec.max_start_ahead) if p.spec.max_start_ahead else START_AHEAD
            for p in self.policies
        )

    def uses_required(self) -> AccessPolicy | None:
        """The first policy that requires requests to set maxUses, or None."""
        return next(
            (p for p in self.policies if p.spec.max_uses and p.spec.max_uses.required), None
        )

    def uses_cap(self) -> tuple[int, AccessPolicy] | None:
        """The fewest uses any policy allows a request to ask for, and that policy."""
        caps = [
            (p.spec.max_uses.max, p)
            for p in self.policies
            if p.spec.max_uses is not None and p.spec.max_uses.max is not None
        ]
        return min(caps, key=lambda item: item[0]) if caps else None

    def extension_approvals(self, policy: AccessPolicy) -> int:
        """The approvals `policy` requires for an extension (its own count unless it says)."""
        override = policy.spec.extensions.required_approvals if policy.spec.extensions else None
        return override or policy.spec.required_approvals

    def extension_total(self) -> tuple[dt.timedelta, str]:
        """The longest a grant and its extensions may last together, from the first grant's
        start, under every policy; and how to name that limit."""
        return min(
            (
                (
                    parse_duration(total),
                    f"extensions.maxTotalDuration {total} (AccessPolicy {_name(p)})",
                )
                if (total := p.spec.extensions.max_total_duration if p.spec.extensions else None)
                else (
                    parse_duration(p.spec.max_duration),
                    f"maxDuration {p.spec.max_duration} (AccessPolicy {_name(p)})",
                )
                for p in self.policies
            ),
            key=lambda item: item[0],
        )

    def grant_duration(self, spec: AccessRequestSpec) -> dt.timedelta:
        """The requested duration, else the shortest default, never beyond any limit."""
        limit, _, _ = self.duration_limit(break_glass=spec.break_glass)
        return min(parse_duration(spec.duration or self.default_duration), limit)

    def windows(self, at: dt.datetime) -> tuple[Window, ...]:
        """Each scheduled governing policy and its window at `at` (empty when none is)."""
        return tuple(
            Window(p, state(p.spec.schedule, at)) for p in self.policies if p.spec.schedule
        )

    def closed_window(self, at: dt.datetime) -> Window | None:
        """The first policy whose window is closed at `at` and that then denies, or None."""
        return next((w for w in self.windows(at) if w.denies), None)


@dataclass(frozen=True)
class Window:
    """One scheduled governing policy at an instant."""

    policy: AccessPolicy
    state: WindowState

    @property
    def name(self) -> str:
        return _name(self.policy)

    @property
    def denies(self) -> bool:
        """Closed, and the policy then grants nothing and lets no grant authorize."""
        schedule = self.policy.spec.schedule
        return (
            not self.state.open
            and schedule is not None
            and (schedule.outside_window.action == "Deny")
        )

    @property
    def approvals_outside(self) -> int | None:
        """With RequireApprovals, the approvals needed outside the window (never fewer than
        `requiredApprovals`); None when the policy denies there instead."""
        schedule = self.policy.spec.schedule
        needed = schedule.outside_window.approvals if schedule else None
        return None if needed is None else max(needed, self.policy.spec.required_approvals)

    def required(self, base: int) -> int:
        """The approvals this policy needs now, given what it needs inside its window."""
        outside = self.approvals_outside
        return base if self.state.open or outside is None else max(base, outside)

    def describe(self) -> str:
        """`AccessPolicy production allows it only Mon-Fri 09:00-17:00 Europe/Berlin`."""
        assert self.policy.spec.schedule is not None  # a Window is made for a schedule only
        return f"AccessPolicy {self.name} allows it only {describe(self.policy.spec.schedule)}"

    def closed_message(self) -> str:
        """Why a closed window refuses, and when it opens again."""
        return f"{self.describe()}, and that window is closed; {self.state.next_opening()}"


@dataclass(frozen=True)
class Resolution:
    """A request every governing policy accepts, and how long it would be granted for."""

    governing: Governing
    duration: dt.timedelta
    pending_timeout: dt.timedelta
    break_glass: bool


def _action_label(action: RequestedAction) -> str:
    return f"{action.verb} on {action.effective_resource}"


def _check_uses(governing: Governing, spec: AccessRequestSpec) -> Refusal | None:
    """maxUses as every governing policy wants it: set where one requires it, within caps."""
    if spec.max_uses is None:
        requiring = governing.uses_required()
        if requiring is not None and spec.extends is None:
            cap = governing.uses_cap()
            hint = f" (at most {cap[0]})" if cap else ""
            return Refusal(
                f"AccessPolicy {_name(requiring)} requires a limited number of uses: "
                f"ask with --max-uses N{hint}, e.g. --max-uses 1 for one-time access",
                "MaxUsesRequired",
                requiring,
            )
        return None
    cap = governing.uses_cap()
    if cap is not None and spec.max_uses > cap[0]:
        return Refusal(
            f"maxUses {spec.max_uses} is too many: AccessPolicy {_name(cap[1])} allows at most "
            f"{cap[0]} use{'s' if cap[0] > 1 else ''}; ask for --max-uses {cap[0]} or fewer",
            "MaxUsesTooMany",
            cap[1],
        )
    return None


def resolve_request(
    policies: Iterable[AccessPolicy],
    namespace: Namespace,
    spec: AccessRequestSpec,
    user: str,
    groups: Iterable[str],
) -> Resolution | Refusal:
    """Which policies govern a request (those of all its actions) and whether every one of
    them accepts its requester, break-glass and duration."""
    policies = list(policies)
    group_set = frozenset(groups)
    governing: list[AccessPolicy] = []
    for action in spec.actions:
        found = governing_policies(policies, namespace, action.verb, action.effective_resource)
        if found is None:
            return Refusal(
                f"no AccessPolicy protects {_action_label(action)} in namespace "
                f"{namespace.name}, so there is nothing to request",
                "NoPolicy",
            )
        governing.extend(found.policies)
    composed = Governing.of(governing)
    assert composed is not None  # a request has at least one action, each governed
    refusing = composed.refusing_requester(user, group_set)
    if refusing is not None:
        return Refusal(
            f"user {user} is not a requester under AccessPolicy {_name(refusing)}",
            "RequesterNotEligible",
            refusing,
        )
    if spec.break_glass:
        refusing = composed.refusing_break_glass(user, group_set)
        if refusing is not None:
            return Refusal(
                f"user {user} may not use break-glass under AccessPolicy {_name(refusing)}",
                "BreakGlassNotAllowed",
                refusing,
            )
        minimum, demanding = composed.break_glass_reason_minimum()
        given = len(spec.reason.strip())
        if demanding is not None and given < minimum:
            return Refusal(
                f"a break-glass reason needs at least {minimum} characters (AccessPolicy "
                f"{_name(demanding)}), not {given}: say what is broken and why it cannot wait "
                "for an approval; every approver is told",
                "BreakGlassReasonTooShort",
                demanding,
            )
    refusal = _check_uses(composed, spec)
    if refusal is not None:
        return refusal
    limit, _, limiting = composed.duration_limit(break_glass=spec.break_glass)
    # An extension's duration is how much longer: its cap counts from the first grant's start
    # (`Governing.extension_total`, checked by `jitgate.core.extensions`).
    if spec.extends is None and spec.duration is not None and parse_duration(spec.duration) > limit:
        most, kind = format_duration(limit), "break-glass access" if spec.break_glass else "access"
        return Refusal(
            f"duration {spec.duration} is too long: {kind} lasts at most {most} "
            f"(AccessPolicy {_name(limiting)}); ask for --for {most} or less",
            "DurationTooLong",
            limiting,
        )
    return Resolution(
        governing=composed,
        duration=composed.grant_duration(spec),
        pending_timeout=composed.pending_timeout,
        break_glass=spec.break_glass,
    )
