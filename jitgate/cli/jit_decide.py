"""`kubectl jit approve|deny|revoke|cancel`: an approver's decision, or a request to stop."""

from __future__ import annotations

import argparse
import sys
from typing import Literal

from jitgate.cli.jit_build import approval_patch
from jitgate.cli.jit_cluster import AccessRequests, CommandError, open_session
from jitgate.cli.jit_format import render_show
from jitgate.cli.jit_review import parsed
from jitgate.cli.options import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE
from jitgate.clock import SYSTEM_CLOCK
from jitgate.lifecycle import CANCEL_ANNOTATION, REVOKE_ANNOTATION
from jitgate.models import Decision

# A concurrent first approval fails our resourceVersion test; re-read and retry this often.
_PATCH_ATTEMPTS = 3
_CONFLICT = frozenset({409, 422})


def _confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def run_decision(args: argparse.Namespace, decision: Decision) -> int:
    verb, done = ("approve", "approved") if decision == "Approve" else ("deny", "denied")
    if not args.yes and not sys.stdin.isatty():
        raise CommandError(
            f"refusing to {verb} without confirmation: stdin is not a terminal; "
            f"pass --yes to {verb} non-interactively",
            EXIT_USAGE,
        )
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


def _article(word: str) -> str:
    return "an" if word[0] in "AEIOU" else "a"
