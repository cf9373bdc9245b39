"""The annotations users set on an AccessRequest to ask for something, and who asked.

Users ask the operator to cancel or revoke through these annotations; the webhook stamps who
asked (the `*-by` annotations) from the authenticated user.
"""

from __future__ import annotations

from jitgate.core.api import RequestPhase

CANCEL_ANNOTATION = "jitgate.dev/cancel"
REVOKE_ANNOTATION = "jitgate.dev/revoke"
CANCELLED_BY_ANNOTATION = "jitgate.dev/cancelled-by"
REVOKED_BY_ANNOTATION = "jitgate.dev/revoked-by"
# Why the grant is revoked, as the one revoking it typed it (`kubectl jit revoke --reason`):
# the operator puts it in the grant.revoked record and the request's message.
REVOKE_REASON_ANNOTATION = "jitgate.dev/revoke-reason"
# An approver marks a break-glass request reviewed (any phase after it was approved), with an
# optional comment; the webhook stamps the reviewer.
REVIEW_ANNOTATION = "jitgate.dev/review"
REVIEW_COMMENT_ANNOTATION = "jitgate.dev/review-comment"
REVIEWED_BY_ANNOTATION = "jitgate.dev/reviewed-by"
# Each annotation a user sets to ask for something, and the one the webhook stamps with who.
STAMPED_ANNOTATIONS: tuple[tuple[str, str], ...] = (
    (CANCEL_ANNOTATION, CANCELLED_BY_ANNOTATION),
    (REVOKE_ANNOTATION, REVOKED_BY_ANNOTATION),
    (REVIEW_ANNOTATION, REVIEWED_BY_ANNOTATION),
)
# The phases a break-glass request can be reviewed in: it was approved, whatever came after.
REVIEWABLE_PHASES: tuple[RequestPhase, ...] = ("Approved", "Expired", "Revoked")
