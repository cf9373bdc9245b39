"""One decision and one audit record per user request, however often the API server asks.

The API server can run admission more than once for one request: a DELETE is validated
against its cached object and again against the stored one (and again on a conflict), with
the same review uid; `kubectl exec` whose WebSocket upgrade is refused tries again over SPDY,
which is a new review with a new uid but the same facts. Each would otherwise be decided and
recorded again, so one `kubectl delete pod` left two or three records.

`DecisionMemo` remembers recent answers, bounded in size and age:

- the same review uid with the same facts (user, action, dry run) from the same caller (the
  connection's verified client certificate, or else its address: `callers.caller_of`) gets
  the same answer for `same_request_ttl` seconds, undecided and unrecorded. The API server
  repeats a review from where it sent it first; a uid replayed by anyone else (possible
  without `--client-ca`) is decided and recorded afresh, as the unverified caller it is,
  never answered from the memo without a record;
- a pod exec/attach/port-forward with the same facts as one refused within `retry_window`
  seconds is still decided afresh (a Grant may have arrived since), but a refusal again for
  the same reason is not recorded again: it is the same user request.

Anything else is a genuinely new request and is decided and recorded.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final

from jitgate.webhook.review import AdmissionRequest, Answer

from jitgate.core.actions import AttemptedAction

DEFAULT_CAPACITY: Final = 16_384
DEFAULT_SAME_REQUEST_TTL: Final = 30.0  # the API server gives up on a request after 60 s
DEFAULT_RETRY_WINDOW: Final = 2.0  # kubectl falls back to SPDY at once
RETRIED_VERBS: Final = frozenset({"exec", "attach", "portforward"})

Facts = tuple[Hashable, ...]


def facts_of(request: AdmissionRequest, attempted: AttemptedAction) -> Facts:
    """What the decision depends on: who, exactly what, and whether it is a dry run.

    Not the deleted object's digest: a DELETE is validated against the cached object and
    again against the stored one, whose resourceVersion (and deletion stamp) may differ.
    """
    detail = {key: value for key, value in attempted.detail.items() if key != "digest"}
    encoded = json.dumps(detail, sort_keys=True, default=str)
    return (request.user, request.groups, request.is_dry_run, attempted, encoded)


class DecisionMemo:
    """Recent answers by review uid (and refused connects by their facts); not thread-safe:
    used from the event loop only."""

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        same_request_ttl: float = DEFAULT_SAME_REQUEST_TTL,
        retry_window: float = DEFAULT_RETRY_WINDOW,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._same_request_ttl = same_request_ttl
        self._retry_window = retry_window
        self._monotonic = monotonic
        self._answers: OrderedDict[Hashable, tuple[float, Answer]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def recall(self, uid: str, facts: Facts, caller: str = "") -> Answer | None:
        """The answer already given to this review (same uid, same facts, same caller)."""
        return self._live(("uid", uid, caller, facts))

    def refused_just_now(self, facts: Facts, attempted: AttemptedAction, message: str) -> bool:
        """Whether this connect repeats one refused within the retry window, for the same
        reason (`message`)."""
        if attempted.verb not in RETRIED_VERBS:
            return False
        earlier = self._live(("retry", facts))
        return earlier is not None and earlier.message == message

    def remember(
        self,
        uid: str,
        facts: Facts,
        attempted: AttemptedAction,
        answer: Answer,
        caller: str = "",
    ) -> None:
        now = self._monotonic()
        self._put(("uid", uid, caller, facts), now + self._same_request_ttl, answer)
        if not answer.allowed and attempted.verb in RETRIED_VERBS:
            self._put(("retry", facts), now + self._retry_window, answer)

    def _live(self, key: Hashable) -> Answer | None:
        found = self._answers.get(key)
        if found is None:
            return None
        expires, answer = found
        if expires > self._monotonic():
            return answer
        del self._answers[key]
        return None

    def _put(self, key: Hashable, expires: float, answer: Answer) -> None:
        self._answers[key] = (expires, answer)
        self._answers.move_to_end(key)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
