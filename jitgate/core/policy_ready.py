"""An AccessPolicy's `Ready` condition: whether jitgate can apply every part of it.

Not Ready when the stored policy does not validate (an unknown `schedule.timeZone`, say: it
then fails closed wherever it may apply) or when an `autoApprove` rule does not compile (its
rules then approve nothing; people still can). The operator writes it next to `Enforced`.
"""

from __future__ import annotations

from jitgate.core.api import AccessPolicy
from jitgate.core.autoapprove import problems
from jitgate.core.policy import UnreadablePolicy

CONDITION = "Ready"


def readiness(policy: AccessPolicy | UnreadablePolicy) -> tuple[bool, str, str]:
    """(ready, reason, message) for the condition."""
    if isinstance(policy, UnreadablePolicy):
        return (
            False,
            "Invalid",
            f"{policy.error}; it is enforced as denying everything it may cover until fixed",
        )
    broken = problems(policy)
    if broken:
        return (
            False,
            "RuleDoesNotCompile",
            "autoApprove approves nothing until fixed: " + "; ".join(broken),
        )
    return True, "Ready", "every part of the policy is in force"
