"""`kubectl jit approve|deny|revoke|cancel|review`: an approver's decision, a request to stop,
or an approver's review of a break-glass grant."""

from __future__ import annotations

import argparse
import sys
from typing import Literal

from jitgate.cli.jit_build import approval_patch
from jitgate.cli.jit_cluster import AccessRequests, CommandError, open_session
from jitgate.cli.jit_format import render_show
from jitgate.cli.jit_review import parsed
from jitgate.cli.options import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE
from jitgate.core.api import Decision
from jitgate.core.clock import SYSTEM_CLOCK
from jitgate.core.requests.annotations import (
    CANCEL_ANNOTATION,
    REVIEW_ANNOTATION,
    REVIEW_COMMENT_ANNOTATION,
    REVIEWABLE_PHASES,
    REVIEWED_BY_ANNOTATION,
    REVOKE_ANNOTATION,
)

# A concurrent first approval fails our resourceVersion test; re-read and retry this often.
_PATCH_ATTEMPTS = 3
_CONFLICT = frozenset({409, 422})


def _confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _need_confirmation(args: argparse.Namespace, verb: str) -> None:
    if not args.yes and not sys.stdin.isatty():
        raise CommandError(
            f"refusing to {verb} without confirmation: stdin is not a terminal; "
            f"pass --yes to {verb} non-interactively",
            EXIT_USAGE,
        )


def run_decision(args: argparse.Namespace, decision: Decision) -> int:
    verb, done = ("approve", "approved") if decision == "Approve" else ("deny", "denied")
    _need_confirmation(args, verb)
    session = open_session(args.kubeconfig, args.context, args.namespace)
    requests = AccessRequests(session)
    namespace, name = session.namespace, args.name
    raw = requests.get(namespace, name)
    request = parsed(raw)
    phase = request.status.phase
    if phase is not None and phase != "Pending":
        raise CommandError(
            f'accessrequest "{name}" is {phase}; only a Pending request can be approved or denied'
        )
    if not args.yes:
        sys.stdout.write(render_show(request, SYSTEM_CLOCK.now()))
        sys.stdout.flush()
        if not _confirm(f"{verb.capitalize()} accessrequest {namespace}/{name}?"):
            sys.stderr.write(f"Nothing changed: accessrequest {namespace}/{name} was not {done}.\n")
            return EXIT_CHECK_FAILED
    entry = (
        {"decision": decision, "comment": args.message} if args.message else {"decision": decision}
    )
    for attempt in range(_PATCH_ATTEMPTS):
        operations = approval_patch(raw, entry)
        try:
            result = requests.patch_status(namespace, name, operations)
            break
        except CommandError as error:
            guarded = operations[0]["op"] == "test"
            if not guarded or error.http_status not in _CONFLICT or attempt + 1 == _PATCH_ATTEMPTS:
                raise
            raw = requests.get(namespace, name)
    approvals = (result.get("status") or {}).get("approvals") or []
    stamped = approvals[-1].get("user") if approvals and isinstance(approvals[-1], dict) else None
    noun = "approval" if decision == "Approve" else "denial"
    who = f" as {stamped}" if stamped else ""
    print(f"accessrequest.jitgate.dev/{name} {noun} recorded{who}")
    return EXIT_OK


def run_stop(
    args: argparse.Namespace, annotation: str, wanted: Literal["Pending", "Approved"]
) -> int:
    verb, done, other = (
        ("cancel", "cancelled", "revoke")
        if annotation == CANCEL_ANNOTATION
        else ("revoke", "revoked", "cancel")
    )
    session = open_session(args.kubeconfig, args.context, args.namespace)
    requests = AccessRequests(session)
    namespace, name = session.namespace, args.name
    phase = parsed(requests.get(namespace, name)).status.phase
    if phase is not None and phase != wanted:
        hint = f" (use kubectl jit {other})" if phase in ("Pending", "Approved") else ""
        raise CommandError(
            f'accessrequest "{name}" is {phase}; only {_article(wanted)} {wanted} request '
            f"can be {done}{hint}"
        )
    requests.merge_patch(namespace, name, {"metadata": {"annotations": {annotation: "true"}}})
    outcome = (
        "the operator deletes its grant"
        if annotation == REVOKE_ANNOTATION
        else "the operator marks it Cancelled"
    )
    print(f"accessrequest.jitgate.dev/{name} {verb} requested; {outcome}")
    return EXIT_OK


def run_review(args: argparse.Namespace) -> int:
    """Mark a break-glass request reviewed; the webhook stamps who, the operator records it."""
    _need_confirmation(args, "review")
    session = open_session(args.kubeconfig, args.context, args.namespace)
    requests = AccessRequests(session)
    namespace, name = session.namespace, args.name
    request = parsed(requests.get(namespace, name))
    phase = request.status.phase
    if not request.spec.break_glass:
        raise CommandError(
            f'accessrequest "{name}" is not a break-glass request; only break-glass requests '
            "are reviewed"
        )
    if phase not in REVIEWABLE_PHASES:
        raise CommandError(
            f'accessrequest "{name}" is {phase or "new"}; only an Approved, Expired or Revoked '
            "request can be reviewed"
        )
    reviewer = request.metadata.annotations.get(REVIEWED_BY_ANNOTATION)
    if reviewer:
        raise CommandError(f'accessrequest "{name}" was already reviewed by {reviewer}')
    if not args.yes:
        sys.stdout.write(render_show(request, SYSTEM_CLOCK.now()))
        sys.stdout.flush()
        if not _confirm(f"Review accessrequest {namespace}/{name}?"):
            where = f"{namespace}/{name}"
            sys.stderr.write(f"Nothing changed: accessrequest {where} was not reviewed.\n")
            return EXIT_CHECK_FAILED
    annotations = {REVIEW_ANNOTATION: "true"}
    if args.message:
        annotations[REVIEW_COMMENT_ANNOTATION] = args.message
    result = requests.merge_patch(namespace, name, {"metadata": {"annotations": annotations}})
    stamped = ((result.get("metadata") or {}).get("annotations") or {}).get(REVIEWED_BY_ANNOTATION)
    who = f" as {stamped}" if isinstance(stamped, str) and stamped else ""
    print(f"accessrequest.jitgate.dev/{name} review recorded{who}")
    return EXIT_OK


def _article(word: str) -> str:
    return "an" if word[0] in "AEIOU" else "a"
