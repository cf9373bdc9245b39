"""KIND/NAME arguments as kubectl takes them (`deploy/web`, `sts db cache`), as the plural
resources policies speak; the names themselves are `jitgate.core.vocabulary`'s."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jitgate.core.vocabulary import KUBECTL_KINDS, kind_named

# A plural resource qualified by an API group: `widgets.example.com`.
_QUALIFIED = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")


class KindError(ValueError):
    """A KIND or KIND/NAME argument that names no resource jitgate can protect."""


@dataclass(frozen=True)
class Target:
    resource: str  # plural, group-qualified for non-core groups
    name: str


def resource_for(kind: str) -> str:
    """`deploy` → `deployments.apps`, `po` → `pods`; `plural.group` passes through."""
    key = kind.strip().lower()
    known_kind = kind_named(key)
    if known_kind is not None:
        return known_kind.resource
    if _QUALIFIED.match(key):
        return key
    known = ", ".join(each.singular for each in KUBECTL_KINDS)
    raise KindError(
        f'unknown kind "{kind}"; use one of {known}, '
        "or a plural group-qualified resource such as widgets.example.com"
    )


def parse_targets(words: list[str]) -> list[Target]:
    """`KIND/NAME [KIND/NAME …]` or `KIND NAME [NAME …]`, as `kubectl delete` accepts them."""
    if not words:
        raise KindError("name what to act on, as KIND/NAME (e.g. deploy/web) or KIND NAME")
    if "/" not in words[0]:
        if len(words) < 2:
            raise KindError(f'"{words[0]}" needs a name: use KIND/NAME or KIND NAME')
        if any("/" in word for word in words[1:]):
            raise KindError("use either KIND/NAME arguments or KIND NAME …, not both")
        resource = resource_for(words[0])
        return [Target(resource, _checked_name(name)) for name in words[1:]]
    targets = []
    for word in words:
        kind, slash, name = word.partition("/")
        if not slash or not kind or "/" in name:
            raise KindError(f'"{word}" is not KIND/NAME; write it like deploy/web')
        targets.append(Target(resource_for(kind), _checked_name(name)))
    return targets


def _checked_name(name: str) -> str:
    if not name:
        raise KindError("an object name must not be empty")
    return name
