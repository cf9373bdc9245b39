"""Optional HTTP notifications about requests, sent in the background with bounded retries.

The lifecycle never waits for them: `Notifier.send()` only queues. A Slack-compatible
incoming webhook gets `{"text": ...}`; the generic format is a JSON object with the facts.
`Notification` is what every channel is told (the Slack app, `jitgate.operator.slack`, too);
a break-glass activation names every approver of the governing policies (`alert`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from jitgate.operator.config import NotifyConfig

from jitgate.core.api import AccessRequest, AccessRequestStatus, Subjects
from jitgate.core.clock import format_time

logger = logging.getLogger("jitgate.operator.notify")

# Where the Slack app posted a request's message (`channel/ts`), so that it can update it.
SLACK_MESSAGE_ANNOTATION = "jitgate.dev/slack-message"

_HEADLINES = {
    "created": "needs approval",
    "approved": "was approved",
    "denied": "was denied",
    "expired": "expired",
}


@dataclass(frozen=True)
class Notification:
    kind: str  # created | approved | denied | expired
    namespace: str
    request: str
    requester: str
    actions: tuple[str, ...]
    reason: str
    phase: str
    message: str
    time: str
    grant: str | None = None
    expires_at: str | None = None
    break_glass: bool = False
    # Named at once on every channel (break-glass: every approver of the governing policies).
    alert_users: tuple[str, ...] = ()
    alert_groups: tuple[str, ...] = ()
    approvals: tuple[str, ...] = ()  # "Approve bob (via slack)", in order
    policies: tuple[str, ...] = ()
    # Where the Slack app posted the request (`jitgate.dev/slack-message`), to update it.
    slack_message: str | None = None
    # Approved with a grant: the commands it allows the requester (`jitgate.core.next_steps`).
    run: tuple[str, ...] = ()

    @property
    def alert(self) -> str:
        """`users bob; groups sre, dba`, or empty when nobody is to be alerted."""
        parts = []
        if self.alert_users:
            parts.append(f"users {', '.join(self.alert_users)}")
        if self.alert_groups:
            parts.append(f"groups {', '.join(self.alert_groups)}")
        return "; ".join(parts)


def describe(
    request: AccessRequest,
    kind: str,
    status: AccessRequestStatus,
    when: str,
    alert: Subjects | None = None,
    run: tuple[str, ...] = (),
) -> Notification:
    """The notification of a step that changed the request's `status` to this."""
    requester = request.spec.requester
    grant = status.grant
    approvals = status.approvals or request.status.approvals
    return Notification(
        kind=kind,
        namespace=request.metadata.namespace or "",
        request=request.metadata.name or "",
        requester=requester.user if requester else "(unknown)",
        actions=tuple(
            f"{a.verb} {a.effective_resource}" + (f" {','.join(a.names)}" if a.names else "")
            for a in request.spec.actions
        ),
        reason=request.spec.reason,
        phase=str(status.phase or request.status.phase or ""),
        message=status.message or "",
        time=when,
        grant=grant.name if grant else None,
        expires_at=format_time(grant.expires_at) if grant else None,
        break_glass=request.spec.break_glass,
        alert_users=tuple(alert.users) if alert else (),
        alert_groups=tuple(alert.groups) if alert else (),
        approvals=tuple(
            f"{a.decision} {a.user or '?'}" + (f" (via {a.via})" if a.via else "")
            for a in approvals
        ),
        policies=status.policy_names or request.status.policy_names,
        slack_message=request.metadata.annotations.get(SLACK_MESSAGE_ANNOTATION),
        run=run,
    )


def slack_body(note: Notification) -> dict[str, Any]:
    glass = " :rotating_light: BREAK-GLASS" if note.break_glass and note.kind == "approved" else ""
    lines = [
        f"*jitgate*: access request `{note.namespace}/{note.request}` by {note.requester} "
        f"{_HEADLINES.get(note.kind, note.kind)}{glass}",
        f"Actions: {'; '.join(note.actions)}",
        f"Reason: {note.reason}",
    ]
    if note.message:
        lines.append(note.message)
    if note.alert:
        lines.append(f"Approvers alerted: {note.alert}")
    if note.kind == "created":
        lines.append(f"Approve: `kubectl jit approve {note.request} -n {note.namespace}`")
    lines += [f"Run: `{line}`" for line in note.run]
    return {"text": "\n".join(lines)}


def generic_body(note: Notification) -> dict[str, Any]:
    return {
        "event": f"request.{note.kind}",
        "namespace": note.namespace,
        "request": note.request,
        "requester": note.requester,
        "actions": list(note.actions),
        "reason": note.reason,
        "phase": note.phase,
        "message": note.message,
        "time": note.time,
        "grant": note.grant,
        "expiresAt": note.expires_at,
        "breakGlass": note.break_glass,
        **({"run": list(note.run)} if note.run else {}),
        **(
            {"alert": {"users": list(note.alert_users), "groups": list(note.alert_groups)}}
            if note.alert
            else {}
        ),
    }


class Notifier:
    """A queue and one worker task; start it inside the running loop, close it at the end."""

    def __init__(self, config: NotifyConfig) -> None:
        self._config = config
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(maxsize=config.queue_size)
        self._worker: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="jitgate-notifier")

    def send(self, note: Notification) -> None:
        try:
            self._queue.put_nowait(note)
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("Notification queue is full; dropped %s/%s", note.kind, note.request)

    async def drain(self, seconds: float) -> None:
        """Wait (bounded) until every queued notification was sent or given up on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), seconds)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def _work(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._config.timeout)
        # Notifications are rare: a fresh connection each time leaves nothing idle behind.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            while True:
                note = await self._queue.get()
                try:
                    await self._deliver(session, note)
                finally:
                    self._queue.task_done()

    async def _deliver(self, session: aiohttp.ClientSession, note: Notification) -> None:
        config = self._config
        body = slack_body(note) if config.format == "slack" else generic_body(note)
        delay = config.backoff
        for attempt in range(1, config.attempts + 1):
            try:
                async with session.post(config.url, json=body) as reply:
                    if reply.status < 300:
                        self.sent += 1
                        return
                    problem = f"HTTP {reply.status}"
                    if 400 <= reply.status < 500 and reply.status not in (408, 429):
                        break  # the endpoint refuses this body; retrying will not help
            except (aiohttp.ClientError, TimeoutError) as error:
                problem = str(error) or type(error).__name__
            if attempt < config.attempts:
                logger.info(
                    "Notification %s/%s failed (%s); retry %d in %.1fs",
                    note.kind,
                    note.request,
                    problem,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, config.max_backoff)
        self.failed += 1
        logger.warning(
            "Notification %s/%s to %s gave up: %s", note.kind, note.request, config.url, problem
        )
