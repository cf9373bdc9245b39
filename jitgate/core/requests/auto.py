"""autoApprove rules in the state machine: evaluated while a request is new or Pending, each
policy's rule approval recorded once (audit record first, then `status.autoApprovals`), and
counted as that policy's requiredApprovals.

An auto-approval satisfies only its own policy: another governing policy still needs its
approvers or its own rule. Outside a RequireApprovals window it does not count (the people
that policy asks for there must approve); a closed Deny window refuses whatever rules say.
Break-glass is never auto-approved. `jitgate.core.autoapprove` evaluates the rules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jitgate.core import autoapprove
from jitgate.core.api import AccessRequest, AutoApproval, Condition
from jitgate.core.events import Record, request_record
from jitgate.core.policy import Governing, Window
from jitgate.core.requests.step import World, set_condition

AUTO_APPROVED = "AutoApproved"  # the condition saying whether, and by which rule


@dataclass(frozen=True)
class Found:
    """Rule approvals new in this step, their records, the errors met, and when the rules
    should be looked at again (they see the hour)."""

    approvals: tuple[AutoApproval, ...] = ()
    records: tuple[Record, ...] = ()
    errors: tuple[str, ...] = ()
    look_again: dt.datetime | None = None


NOTHING = Found()


def evaluate(
    request: AccessRequest,
    world: World,
    governing: Governing,
    duration: dt.timedelta,
    recorded: Sequence[AutoApproval],
) -> Found:
    """The governing policies' rules that approve now, for policies without one yet."""
    done = {a.policy for a in recorded}
    waiting = [p for p in governing.policies if p.spec.auto_approve and p.metadata.name not in done]
    if not waiting or request.spec.break_glass:
        return NOTHING
    now = world.now
    evaluations = autoapprove.evaluate_all(waiting, request, world.namespace.labels, duration, now)
    approvals: list[AutoApproval] = []
    records: list[Record] = []
    errors: list[str] = []
    for evaluation in evaluations:
        errors.extend(f"AccessPolicy {evaluation.policy} {e}" for e in evaluation.errors)
        match = evaluation.match
        if match is None:
            continue
        approvals.append(
            AutoApproval(
                policy=match.policy,
                rule=match.rule,
                inputs_digest=match.inputs_digest,
                time=now.replace(microsecond=0),
            )
        )
        records.append(
            request_record(
                "request.approval",
                request,
                now,
                reason=f"auto-approved by rule {match.rule} of AccessPolicy {match.policy}",
                context={
                    "decision": "Approve",
                    "autoApproved": True,
                    "rule": match.rule,
                    "policy": match.policy,
                    "counted": True,
                    "countedFor": [match.policy],
                    "inputsDigest": match.inputs_digest,
                    "inputs": match.inputs,
                    "spec": request.spec.to_wire(),
                },
                key_suffix=f"/auto/{match.policy}",
            )
        )
    unmatched = len(approvals) < len(waiting)
    hour = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    return Found(tuple(approvals), tuple(records), tuple(errors), hour if unmatched else None)


def counting(approvals: Sequence[AutoApproval], windows: Mapping[str, Window]) -> frozenset[str]:
    """The policies whose rule approval counts now: not outside their RequireApprovals window."""
    return frozenset(
        a.policy for a in approvals if a.policy not in windows or windows[a.policy].state.open
    )


def describe(approvals: Sequence[AutoApproval]) -> str:
    """`rule on-call of AccessPolicy production`, joined with `and`."""
    return " and ".join(f"rule {a.rule} of AccessPolicy {a.policy}" for a in approvals)


def condition(
    conditions: Sequence[Condition], found: Found, now: dt.datetime
) -> list[Condition] | None:
    """The AutoApproved condition after this step, or None when it does not change."""
    if found.approvals:
        message = f"approved by {describe(found.approvals)}"
        return set_condition(conditions, AUTO_APPROVED, "True", "RuleMatched", message, now)
    if found.errors:
        message = "; ".join(found.errors)[:4000]
        return set_condition(conditions, AUTO_APPROVED, "False", "EvaluationError", message, now)
    return None
