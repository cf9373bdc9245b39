"""Why jitgate says no: one refusal type for every rule in the core.

A rule that refuses returns a `Refusal` instead of raising: refusing is an ordinary answer
(the webhook denies the write, the operator denies the request), and each caller decides
how to report it. The message is one sentence for the person refused; the reason is a short
CamelCase cause for machines (audit records, conditions, events).
"""

from __future__ import annotations

from dataclasses import dataclass

from jitgate.core.api import AccessPolicy


@dataclass(frozen=True)
class Refusal:
    message: str  # "the spec of an AccessRequest cannot change after creation; ..."
    reason: str  # "SpecImmutable"
    policy: AccessPolicy | None = None  # the AccessPolicy that refuses, when one does
