"""Actions reached through another object: what an edit amounts to when an exempt controller
does the work, or when it switches protection off.

* An autoscaler (HPA) whose target is protected is a scale of that target: the HPA
  controller moves the target's replicas into `[minReplicas, maxReplicas]` at once, and
  anywhere inside that range as its metrics say later.
* Deleting a namespace is a delete of every protected object in it: the namespace controller
  removes them all.
* A label change that makes a policy stop covering a namespace is `unprotect` of it.

The webhook reads what these rules need (the target's replicas, the namespace's objects);
the rules themselves do no I/O. Each action says how it was reached in `detail["via"]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from jitgate.core.actions import AttemptedAction
from jitgate.core.api import AccessPolicy
from jitgate.core.policy import Namespace, UnreadablePolicy, covers_namespace, is_exempt
from jitgate.core.vocabulary import NAMESPACES, UNPROTECT_VERB

AUTOSCALERS = "horizontalpodautoscalers.autoscaling"


def autoscaler_scale(
    namespace: str,
    autoscaler: str,
    resource: str,
    name: str,
    *,
    current: int,
    low: int,
    high: int,
) -> AttemptedAction | None:
    """The scale an autoscaler with bounds `low..high` amounts to on a target running
    `current` replicas, or None when it can never move the target.

    It cannot when the target runs no replicas (the HPA controller leaves a target scaled to
    zero alone) or when the bounds pin the target where it is. Otherwise it is a scale from
    `current` to what the bounds force now; the controller may later move anywhere in the
    range, which is why an autoscaler that merely allows change needs the grant too.
    """
    if current == 0 or low == high == current:
        return None
    forced = min(max(current, low), high)
    detail: dict[str, object] = {
        "replicas": {"old": current, "new": forced},
        "via": f"{AUTOSCALERS}/{autoscaler}",
        "bounds": {"minReplicas": low, "maxReplicas": high},
    }
    return AttemptedAction("scale", namespace, resource, name, detail=detail)


def deletable_resources(
    policies: Iterable[AccessPolicy],
    namespace: Namespace,
    user: str,
    groups: Sequence[str],
) -> tuple[str, ...]:
    """The resources whose delete some policy protects in `namespace` for this caller, in
    the order the policies (by name) list them: what deleting the namespace must account for."""
    group_set = frozenset(groups)
    found: dict[str, None] = {}
    for policy in sorted(policies, key=lambda p: p.metadata.name or ""):
        if "delete" not in policy.spec.actions or not covers_namespace(policy, namespace):
            continue
        if is_exempt(policy, user, group_set):
            continue
        found.update(dict.fromkeys(policy.spec.resources))
    return tuple(found)


def namespace_deletes(
    namespace: str, objects: Mapping[str, Sequence[str]]
) -> list[AttemptedAction]:
    """One delete per object the namespace controller would remove, by resource then name;
    `objects` maps each resource to the names that exist."""
    return [
        AttemptedAction(
            "delete",
            namespace,
            resource,
            name,
            detail={"via": f"{NAMESPACES}/{namespace}"},
        )
        for resource, names in objects.items()
        for name in sorted(names)
    ]


def protection_lost(
    policies: Iterable[AccessPolicy | UnreadablePolicy],
    name: str,
    before: Mapping[str, str],
    after: Mapping[str, str],
) -> tuple[str, ...]:
    """The policies that protect namespace `name` with labels `before` and no longer would
    with labels `after`, by name. An invalid policy whose namespaces cannot be read might
    stop covering on any label change, so it counts as lost (failing closed)."""
    old, new = Namespace(name, before), Namespace(name, after)
    lost = []
    for policy in policies:
        if isinstance(policy, UnreadablePolicy):
            if policy.may_cover(old) and (policy.namespaces is None or not policy.may_cover(new)):
                lost.append(policy.name)
        elif covers_namespace(policy, old) and not covers_namespace(policy, new):
            lost.append(policy.metadata.name or "")
    return tuple(sorted(lost))


def unprotect(name: str, lost: Sequence[str], before: Mapping[str, str]) -> AttemptedAction:
    """`unprotect namespace NAME`: the label change that ends the protection of `lost`."""
    detail: dict[str, object] = {"policies": list(lost), "labels": dict(before)}
    return AttemptedAction(UNPROTECT_VERB, name, NAMESPACES, name, detail=detail)
