"""`kubectl jit approve|deny|revoke|cancel|review`: an approver's decision, a request to stop,
or an approver's review of a break-glass grant."""

from __future__ import annotations

import sys

from jitgate.cli.errors import EXIT_CHECK_FAILED, EXIT_OK, ApiRefused, CommandFailed, UsageError
from jitgate.cli.kubectl_jit.build import approval_patch
from jitgate.cli.kubectl_jit.cluster import AccessRequests, Json, open_session
from jitgate.cli.kubectl_jit.options import DecisionOptions, ReviewOptions, StopOptions
from jitgate.cli.kubectl_jit.review import described, next_steps, parsed, read_policies
from jitgate.cli.kubectl_jit.views import approvers_so_far, ended_at, human_duration
from jitgate.cli.kubectl_jit.waiting import decided, settle
from jitgate.core.api import TERMINAL_PHASES, Decision
from jitgate.core.clock import SYSTEM_CLOCK, format_time
from jitgate.core.policy import describe_policies
from jitgate.core.requests.annotations import (
    CANCEL_ANNOTATION,
    REVIEW_ANNOTATION,
    REVIEW_COMMENT_ANNOTATION,
    REVIEWABLE_PHASES,
    REVIEWED_BY_ANNOTATION,
    REVOKE_ANNOTATION,
    REVOKE_REASON_ANNOTATION,
)

# How long approve and deny wait for the operator to act on a deciding vote.
_SETTLE_SECONDS = 5.0
# A concurrent first approval fails our resourceVersion test; re-read and retry this often.
_PATCH_ATTEMPTS = 3
_CONFLICT = frozenset({409, 422})


def _confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _need_confirmation(yes: bool, verb: str) -> None:
    if not yes and not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {verb} without confirmation: stdin is not a terminal; "
            f"pass --yes to {verb} non-interactively"
        )


def run_decision(options: DecisionOptions) -> int:
    decision = options.decision
    verb, done = ("approve", "approved") if decision == "Approve" else ("deny", "denied")
    _need_confirmation(options.yes, verb)
    session = open_session(options.cluster)
    requests = AccessRequests(session)
    namespace, name = session.namespace, options.name
    raw = requests.get(namespace, name)
    request = parsed(raw)
    phase = request.status.phase
    if phase is not None and phase != "Pending":
        raise CommandFailed(
            f'accessrequest "{name}" is {phase}; only a Pending request can be approved or denied'
        )
    if not options.yes:
        sys.stdout.write(described(requests, request))
        sys.stdout.flush()
        if not _confirm(f"{verb.capitalize()} accessrequest {namespace}/{name}?"):
            sys.stderr.write(f"Nothing changed: accessrequest {namespace}/{name} was not {done}.\n")
            return EXIT_CHECK_FAILED
    entry = (
        {"decision": decision, "comment": options.message}
        if options.message
        else {"decision": decision}
    )
    for attempt in range(_PATCH_ATTEMPTS):
        operations = approval_patch(raw, entry)
        try:
            result = requests.patch_status(namespace, name, operations)
            break
        except ApiRefused as error:
            guarded = operations[0]["op"] == "test"
            if not guarded or error.http_status not in _CONFLICT or attempt + 1 == _PATCH_ATTEMPTS:
                raise
            raw = requests.get(namespace, name)
    approvals = (result.get("status") or {}).get("approvals") or []
    stamped = approvals[-1].get("user") if approvals and isinstance(approvals[-1], dict) else None
    noun = "approval" if decision == "Approve" else "denial"
    who = f" as {stamped}" if stamped else ""
    print(f"accessrequest.jitgate.dev/{name} {noun} recorded{who}")
    print(_resulting_state(requests, result, decision))
    return EXIT_OK


def _approvers_text(requests: AccessRequests, policy_name: str | None) -> str:
    """` from group sre` or ` from users bob, carol or group sre`, where the policy is
    readable."""
    policy = next(
        (p for p in read_policies(requests) or [] if p.metadata.name == policy_name), None
    )
    if policy is None:
        return ""
    parts = [
        f"{noun if len(names) == 1 else noun + 's'} {', '.join(names)}"
        for noun, names in (
            ("user", policy.spec.approvers.users),
            ("group", policy.spec.approvers.groups),
        )
        if names
    ]
    return f" from {' or '.join(parts)}" if parts else ""


def _resulting_state(requests: AccessRequests, result: Json, decision: Decision) -> str:
    """Where the request stands after this decision: still waiting (for how many more, from
    whom), or what the operator made of it."""
    request = parsed(result)
    name, namespace = request.metadata.name or "", request.metadata.namespace or ""
    follow = f"kubectl jit wait {name} -n {namespace}"
    status = request.status
    if status.phase is None:
        return f"The jitgate operator has not picked this request up yet; follow it with: {follow}"
    if decision == "Approve" and len(status.policy_names) > 1:
        return (
            f"Pending under {describe_policies(status.policy_names)}, each of which must be "
            f"satisfied by its own approvers; follow it with: {follow}"
        )
    approvals, required = len(approvers_so_far(request)), status.required_approvals or 1
    if decision == "Approve" and approvals < required:
        source = _approvers_text(requests, status.policy)
        return (
            f"Pending: {approvals} of {required} approvals; waiting for "
            f"{required - approvals} more{source}"
        )
    final = parsed(settle(requests, result, _SETTLE_SECONDS, decided))
    grant = final.status.grant
    if final.status.phase == "Approved" and grant is not None:
        left = human_duration(grant.expires_at - SYSTEM_CLOCK.now())
        until = format_time(grant.expires_at)
        requester = final.spec.requester.user if final.spec.requester else "the requester"
        runs = "".join(f"\n  {line}" for line in next_steps(final, read_policies(requests)))
        return (
            f"Approved: grant {grant.name} is live until {until} ({left} left); "
            f"{requester} runs:{runs}"
        )
    if final.status.phase in TERMINAL_PHASES:
        return f"{final.status.phase}: {final.status.message or 'the request is closed'}"
    return f"The jitgate operator has not acted on it yet; follow it with: {follow}"


def run_stop(options: StopOptions) -> int:
    annotation, wanted = options.annotation, options.wanted
    done, other = (
        ("cancelled", "revoke") if annotation == CANCEL_ANNOTATION else ("revoked", "cancel")
    )
    session = open_session(options.cluster)
    requests = AccessRequests(session)
    namespace, name = session.namespace, options.name
    phase = parsed(requests.get(namespace, name)).status.phase
    if phase is not None and phase != wanted:
        hint = f" (use kubectl jit {other})" if phase in ("Pending", "Approved") else ""
        raise CommandFailed(
            f'accessrequest "{name}" is {phase}; only {_article(wanted)} {wanted} request '
            f"can be {done}{hint}"
        )
    if options.reason is not None and not options.reason.strip():
        raise UsageError("--reason must say why")
    annotations = {annotation: "true"}
    if options.reason:
        annotations[REVOKE_REASON_ANNOTATION] = options.reason
    result = requests.merge_patch(namespace, name, {"metadata": {"annotations": annotations}})
    grant = parsed(result).status.grant
    if annotation == REVOKE_ANNOTATION:
        # The webhook that admitted the patch holds the revoke from before it was stored:
        # nothing is admitted under the grant from here on, with or without the operator.
        under = f"grant {grant.name}" if grant is not None else "its grant"
        print(
            f"accessrequest.jitgate.dev/{name} revoked: nothing is admitted under {under} any more"
        )
    else:
        print(f"accessrequest.jitgate.dev/{name} cancel requested; the operator marks it Cancelled")
    final = parsed(settle(requests, result, _SETTLE_SECONDS, _ended))
    if final.status.phase in TERMINAL_PHASES:
        ended = ended_at(final)
        when = f" at {format_time(ended)}" if ended is not None else ""
        print(f"{final.status.phase}{when}: {final.status.message or done}")
    elif annotation == REVOKE_ANNOTATION and grant is not None:
        print(
            f"Still pending: Grant {grant.name} still exists because the jitgate operator has not "
            "deleted it yet (is it running?); jitgate's webhooks deny under it already. Follow "
            f"with: kubectl jit show {name} -n {namespace}"
        )
    return EXIT_OK


def _ended(raw: Json) -> bool:
    return (raw.get("status") or {}).get("phase") in TERMINAL_PHASES


def run_review(options: ReviewOptions) -> int:
    """Mark a break-glass request reviewed; the webhook stamps who, the operator records it."""
    _need_confirmation(options.yes, "review")
    session = open_session(options.cluster)
    requests = AccessRequests(session)
    namespace, name = session.namespace, options.name
    request = parsed(requests.get(namespace, name))
    phase = request.status.phase
    if not request.spec.break_glass:
        raise CommandFailed(
            f'accessrequest "{name}" is not a break-glass request; only break-glass requests '
            "are reviewed"
        )
    if phase not in REVIEWABLE_PHASES:
        raise CommandFailed(
            f'accessrequest "{name}" is {phase or "new"}; only an Approved, Expired or Revoked '
            "request can be reviewed"
        )
    reviewer = request.metadata.annotations.get(REVIEWED_BY_ANNOTATION)
    if reviewer:
        raise CommandFailed(f'accessrequest "{name}" was already reviewed by {reviewer}')
    if not options.yes:
        sys.stdout.write(described(requests, request))
        sys.stdout.flush()
        if not _confirm(f"Review accessrequest {namespace}/{name}?"):
            where = f"{namespace}/{name}"
            sys.stderr.write(f"Nothing changed: accessrequest {where} was not reviewed.\n")
            return EXIT_CHECK_FAILED
    annotations = {REVIEW_ANNOTATION: "true"}
    if options.message:
        annotations[REVIEW_COMMENT_ANNOTATION] = options.message
    result = requests.merge_patch(namespace, name, {"metadata": {"annotations": annotations}})
    stamped = ((result.get("metadata") or {}).get("annotations") or {}).get(REVIEWED_BY_ANNOTATION)
    who = f" as {stamped}" if isinstance(stamped, str) and stamped else ""
    print(f"accessrequest.jitgate.dev/{name} review recorded{who}")
    return EXIT_OK


def _article(word: str) -> str:
    return "an" if word[0] in "AEIOU" else "a"
