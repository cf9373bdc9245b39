"""The Slack messages (Block Kit): a request with Approve / Deny / View buttons, its outcome,
the loud break-glass alert and the ephemeral replies to one clicker.

Pure: dictionaries in, dictionaries out. Every button carries `namespace/name` as its value and
one of the `ACTIONS` as its action_id; everything else a click says is read from the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from jitgate.operator.notify import Notification

from jitgate.core.api import AccessRequest
from jitgate.core.clock import format_time

APPROVE: Final = "jitgate.approve"
DENY: Final = "jitgate.deny"
VIEW: Final = "jitgate.view"
ACTIONS: Final = (APPROVE, DENY, VIEW)

Blocks = list[dict[str, Any]]

_OUTCOMES = {
    "approved": ":white_check_mark: Approved",
    "denied": ":no_entry: Denied",
    "expired": ":hourglass: Expired",
}


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as its docs ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def reference(note: Notification) -> str:
    return f"{note.namespace}/{note.request}"


def _facts(note: Notification) -> Blocks:
    glass = " :rotating_light: *BREAK-GLASS*" if note.break_glass else ""
    lines = [
        f"*Access request* `{reference(note)}` by *{_escape(note.requester)}*{glass}",
        f"*Actions:* {_escape('; '.join(note.actions))}",
        f"*Reason:* {_escape(note.reason)}",
    ]
    if note.policies:
        lines.append(f"*Policies:* {_escape(', '.join(note.policies))}")
    return [_section("\n".join(lines))]


def _buttons(note: Notification) -> dict[str, Any]:
    value = reference(note)

    def button(text: str, action_id: str, style: str | None = None) -> dict[str, Any]:
        element: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": text},
            "action_id": action_id,
            "value": value,
        }
        if style:
            element["style"] = style
        return element

    return {
        "type": "actions",
        "block_id": "jitgate.decide",
        "elements": [
            button("Approve", APPROVE, "primary"),
            button("Deny", DENY, "danger"),
            button("View request", VIEW),
        ],
    }


def request_message(note: Notification, progress: Sequence[str] = ()) -> tuple[str, Blocks]:
    """A pending request: its facts, decisions so far, and the buttons."""
    text = f"jitgate: access request {reference(note)} by {note.requester} needs approval"
    blocks = _facts(note)
    if progress:
        blocks.append(_context("Decisions so far: " + _escape(", ".join(progress))))
    blocks.append(_buttons(note))
    return text, blocks


def outcome_message(note: Notification) -> tuple[str, Blocks]:
    """The request once decided: no buttons, what happened and why."""
    outcome = _OUTCOMES.get(note.kind, note.kind)
    text = f"jitgate: access request {reference(note)} by {note.requester}: {outcome}"
    blocks = _facts(note)
    detail = f"*{outcome}*" + (f": {_escape(note.message)}" if note.message else "")
    blocks.append(_section(detail))
    if note.approvals:
        blocks.append(_context("Decisions: " + _escape(", ".join(note.approvals))))
    if note.expires_at:
        blocks.append(_context(f"Grant {note.grant} until {note.expires_at}"))
    if note.run:
        blocks.append(_context("Run: " + ", ".join(f"`{_escape(line)}`" for line in note.run)))
    return text, blocks


def break_glass_alert(note: Notification, mentions: Sequence[str]) -> tuple[str, Blocks]:
    """Every approver named: an emergency grant was activated without approval."""
    named = " ".join(f"<@{slack_id}>" for slack_id in mentions)
    text = (
        f":rotating_light: BREAK-GLASS: {note.requester} activated an emergency grant in "
        f"{note.namespace} without approval"
    )
    blocks = [
        _section(f"*{_escape(text)}*" + (f"\n{named}" if named else "")),
        *_facts(note),
        _context(
            f"Approvers of {_escape(', '.join(note.policies))}: {_escape(note.alert)}. "
            f"Review it: `kubectl jit review {note.request} -n {note.namespace} -m ...`"
        ),
    ]
    return text, blocks


def describe_request(request: AccessRequest) -> str:
    """What the View button shows the clicker (only them)."""
    spec, status = request.spec, request.status
    lines = [
        f"*{request.metadata.namespace}/{request.metadata.name}*: {status.phase or 'New'}",
        f"Requester: {spec.requester.user if spec.requester else '?'}",
        f"Reason: {_escape(spec.reason)}" + (f" (ticket {spec.ticket})" if spec.ticket else ""),
        "Actions: "
        + "; ".join(
            f"{a.verb} {a.effective_resource}/{','.join(a.names) or '*'}"
            + (f" -c {a.container}" if a.container else "")
            + (f" -- {' '.join(a.command)}" if a.command else "")
            for a in spec.actions
        ),
        f"Duration: {spec.duration or 'the policy default'}",
        f"Policies: {', '.join(status.policy_names) or '?'}",
    ]
    if status.message:
        lines.append(f"Status: {_escape(status.message)}")
    if status.pending_deadline:
        lines.append(f"Pending until: {format_time(status.pending_deadline)}")
    for approval in status.approvals:
        via = f" via {approval.via}" if approval.via else ""
        lines.append(f"• {approval.decision} by {approval.user}{via}: {_escape(approval.comment)}")
    return "\n".join(lines)
