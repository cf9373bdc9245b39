"""The live sessions of one gateway: how many may run, and the loop that ends them.

Every `check_interval` each session is decided again exactly as the webhook would decide its
stream now (`AdmissionService.verdict`, the same core decision on the same grant cache): when
that is a denial, the session is cut: "grant expired" when its grant's `expiresAt` has passed,
"revoked" when the grant is gone or being deleted (a revoke, with or without the operator),
otherwise with the denial's own words (a policy changed). A session whose user has not typed
or resized the terminal for the governing policies' `sessions.idleTimeout` is cut as idle.
A session whose pod side has ended (or that was cut) but whose client has not taken the rest
within the drain timeout is dropped (`LiveSession.end_if_stalled`). With a one-second interval
a session ends within about a second of the moment, well inside the five seconds promised.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator

from jitgate.webhook.gateway.frontproxy import Caller
from jitgate.webhook.gateway.relay import Cut, LiveSession
from jitgate.webhook.service import AdmissionService

from jitgate.core.clock import Clock, format_time
from jitgate.core.durations import format_duration
from jitgate.core.sessions import GATEWAY_STOPPING, GRANT_EXPIRED, IDLE_TIMEOUT, REVOKED, Ending

logger = logging.getLogger(__name__)


class TooManySessions(Exception):
    """A session over the gateway's limits; the message says which."""


class Registry:
    def __init__(
        self,
        service: AdmissionService,
        clock: Clock,
        *,
        max_sessions: int,
        max_sessions_per_user: int,
        check_interval: float,
    ) -> None:
        self._service = service
        self._clock = clock
        self._max = max_sessions
        self._max_per_user = max_sessions_per_user
        self._interval = check_interval
        self._sessions: dict[str, LiveSession] = {}
        self._reserved: Counter[str] = Counter()

    def __len__(self) -> int:
        return sum(self._reserved.values())

    def check_room(self, caller: Caller) -> None:
        """TooManySessions, saying which limit, when `caller` may not open a session now."""
        if len(self) >= self._max:
            raise TooManySessions(
                f"the session gateway is at its limit of {self._max} session"
                f"{'s' if self._max != 1 else ''} open at once; try again later"
            )
        if self._reserved[caller.user] >= self._max_per_user:
            plural = "s" if self._max_per_user != 1 else ""
            raise TooManySessions(
                f"{caller.user} already has {self._max_per_user} session{plural} open, the most "
                "the gateway allows one user; close one first"
            )

    @contextlib.contextmanager
    def slot(self, caller: Caller) -> Iterator[None]:
        """Hold one of the session slots while a session opens and runs."""
        self.check_room(caller)
        self._reserved[caller.user] += 1
        try:
            yield
        finally:
            self._reserved[caller.user] -= 1
            if not self._reserved[caller.user]:
                del self._reserved[caller.user]

    def add(self, session: LiveSession) -> None:
        self._sessions[session.id] = session

    def remove(self, session: LiveSession) -> None:
        self._sessions.pop(session.id, None)

    async def check_all(self) -> None:
        """Decide every live session again; cut those no longer allowed."""
        for session in list(self._sessions.values()):
            if session.end_if_stalled(self._clock.now()):
                logger.info(
                    "Dropping the client of session %s of %s: it stopped reading",
                    session.id,
                    session.caller.user,
                )
                continue
            if session.is_cut:
                continue
            cut = await self.check(session)
            if cut is not None:
                logger.info(
                    "Ending session %s of %s: %s",
                    session.id,
                    session.caller.user,
                    cut.ending.reason,
                )
                session.cut(cut)

    async def check(self, session: LiveSession) -> Cut | None:
        now = self._clock.now()
        attempted = session.attempted
        verdict = await self._service.verdict(session.caller.user, session.caller.groups, attempted)
        if verdict is not None and not verdict.allowed:
            return self._ended_grant(session, now) or Cut(
                Ending.terminated("access ended", verdict.reason), verdict.message
            )
        if session.idle_timeout is not None and session.idle(now) >= session.idle_timeout:
            limit = format_duration(session.idle_timeout)
            return Cut(
                Ending.terminated(IDLE_TIMEOUT, limit),
                f"it was idle for {limit}, the longest its access policy allows",
            )
        return None

    def _ended_grant(self, session: LiveSession, now: dt.datetime) -> Cut | None:
        if session.grant is None:
            return None
        # Expiry first: the operator deletes an expired grant, which is no revoke.
        if session.expires_at is not None and session.expires_at <= now:
            return Cut(
                Ending.terminated(GRANT_EXPIRED, f"grant {session.grant}"),
                f"grant {session.grant} expired at {format_time(session.expires_at)}",
            )
        grant = self._service.cache.grants.get(session.attempted.namespace, session.grant)
        if grant is None or grant.ending:  # deleted, being deleted, or its request revoked
            return Cut(
                Ending.terminated(REVOKED, f"grant {session.grant}"),
                f"grant {session.grant} was revoked",
            )
        return None

    async def run(self) -> None:
        """Check every session every `check_interval` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check_all()
            except Exception:  # one bad check must not stop ending the others
                logger.exception("Checking the live sessions failed")

    def stop_all(self) -> None:
        for session in list(self._sessions.values()):
            session.cut(Cut(Ending.terminated(GATEWAY_STOPPING), "the session gateway is stopping"))
