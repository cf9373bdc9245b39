"""Extending a live grant (`spec.extends`, `kubectl jit extend`), without I/O.

An extension is a new AccessRequest naming an earlier one of the same requester that is
Approved and whose grant is still live. It asks for exactly the same actions; its `duration`
says how much longer. Admission refuses one that could never be granted (`refusal`), and the
operator checks again when it admits and when it approves, with the policies' extension bar
(`AccessPolicy.spec.extensions.requiredApprovals`, else the usual count).

Once approved, the extension's grant is live from the approval until the earlier grant's end
plus the duration (`window`): both grants overlap, so the actions they allow never see a gap.
The total is capped by `maxDuration` (or `extensions.maxTotalDuration`) counted from the start
of the chain's first grant, which every extension's grant carries as `windowStart`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from jitgate.core.api import AccessRequest, AccessRequestSpec, GrantSpec
from jitgate.core.clock import format_time
from jitgate.core.durations import format_duration, parse_duration
from jitgate.core.grants import Extension
from jitgate.core.policy import Governing
from jitgate.core.refusals import Refusal


@dataclass(frozen=True)
class Extended:
    """The request an extension names and its grant, as read; None where they do not exist."""

    name: str
    request: AccessRequest | None
    grant: GrantSpec | None


def chain_start(grant: GrantSpec) -> dt.datetime:
    """When the first grant of the chain `grant` belongs to began."""
    return grant.window_start or grant.not_before


def refusal(
    spec: AccessRequestSpec, user: str, extended: Extended, governing: Governing, now: dt.datetime
) -> Refusal | None:
    """Why this extension can never be granted, or None."""
    earlier, name = extended.request, extended.name
    if earlier is None:
        return Refusal(
            f"AccessRequest {name} does not exist in this namespace; extend one of your "
            "approved requests (kubectl jit list --mine)",
            "ExtendsUnknown",
        )
    owner = earlier.spec.requester.user if earlier.spec.requester else None
    if owner != user:
        return Refusal(
            f"AccessRequest {name} is {owner or 'nobody'}'s; only its requester may extend it",
            "ExtendsOthers",
        )
    live = _live_grant(earlier, extended.grant, now)
    if isinstance(live, Refusal):
        return live
    if [a.to_wire() for a in spec.actions] != [a.to_wire() for a in earlier.spec.actions]:
        return Refusal(
            f"an extension asks for exactly the actions of {name}; for other actions ask "
            "with kubectl jit request",
            "ExtendsOtherActions",
        )
    return _over_total(spec, live, governing)


def _live_grant(
    earlier: AccessRequest, grant: GrantSpec | None, now: dt.datetime
) -> GrantSpec | Refusal:
    name = earlier.metadata.name
    phase = earlier.status.phase
    if phase != "Approved" or earlier.status.grant is None:
        return Refusal(
            f"AccessRequest {name} is {phase or 'new'}: only an approved request whose grant "
            "is live can be extended; ask anew with kubectl jit request",
            "ExtendsNotLive",
        )
    if grant is None or grant.expires_at <= now:
        ended = f" at {format_time(grant.expires_at)}" if grant is not None else ""
        return Refusal(
            f"the grant of AccessRequest {name} has ended{ended}; "
            "ask anew with kubectl jit request",
            "ExtendsNotLive",
        )
    return grant


def _over_total(spec: AccessRequestSpec, grant: GrantSpec, governing: Governing) -> Refusal | None:
    total, limit_text = governing.extension_total()
    start = chain_start(grant)
    wanted = grant.expires_at + parse_duration(spec.duration or "0s")
    if wanted - start <= total:
        return None
    left = start + total - grant.expires_at
    hint = (
        f"ask for --by {format_duration(left)} or less"
        if left > dt.timedelta(0)
        else "it cannot be extended further"
    )
    return Refusal(
        f"extending by {spec.duration} would make access last {format_duration(wanted - start)} "
        f"from {format_time(start)}, more than the {limit_text}; {hint}",
        "ExtensionTooLong",
    )


def window(spec: AccessRequestSpec, grant: GrantSpec, governing: Governing) -> Extension:
    """The extension grant's end and chain start: the earlier grant's end plus the duration,
    never beyond the total the policies allow from the chain's start."""
    total, _ = governing.extension_total()
    start = chain_start(grant)
    until = min(grant.expires_at + parse_duration(spec.duration or "0s"), start + total)
    return Extension(until=until, window_start=start)


def still_live(extended: Extended | None, now: dt.datetime) -> GrantSpec | Refusal:
    """The earlier grant, when the extension can be approved now (it is still live)."""
    if extended is None or extended.request is None:
        name = extended.name if extended else "it extends"
        return Refusal(f"AccessRequest {name} no longer exists", "ExtendsUnknown")
    return _live_grant(extended.request, extended.grant, now)
