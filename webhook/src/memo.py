"""One decision and one audit record per user request, however often the API server asks.

The API server can run admission more than once for one user request, and gives every
call a review uid of its own:

- a DELETE is validated as the object is marked for deletion, again as it is removed, and
  again when its cached copy was stale (a pod delete: two or three calls);
- a webhook call that failed on the network is sent again with the same uid;
- `kubectl exec` whose WebSocket upgrade is refused tries again over SPDY.

Each would otherwise be decided and recorded again, so one `kubectl delete pod` left two or
three records. `DecisionMemo` remembers recent answers, bounded in size and age:

- **same uid** with the same facts (user, action, dry run) from the same caller (the
  connection's verified client certificate, or else its address: `callers.caller_of`): the
  same answer for `same_request_ttl` seconds, undecided and unrecorded. The API server
  repeats a review from where it sent it first; a uid replayed by anyone else (possible
  without `--client-ca`) is decided and recorded afresh, as the unverified caller it is,
  never answered from the memo without a record;
- **a DELETE allowed again** (`repeat_of`): from the same caller, for the same user and
  groups, the same object *incarnation* (its metadata.uid), the same options (grace period,
  propagation, preconditions) and dry run, within `repeat_window` seconds of an allow. It is
  **decided afresh** like any review, and only when the fresh decision is an allow by the
  same Grant (same name and uid) is it answered with the earlier answer (the request's one
  record and its annotations) instead of a record of its own;
- **the same user request by its trace id** (`repeat_of` with a `trace`: the API server's
  word, trusted with `--apiserver-traces`, `jitgate.webhook.traces`): any allowed review from
  the same caller with the same trace id, user and groups, action and dry run (all but the
  old state it was decided on: a scale's earlier count), within `repeat_window` seconds. As
  for a DELETE, it is decided afresh, and an allow by the same Grant is answered with the
  request's earlier answer and record. So a contended scale the API server tries three
  times is one record, and so is a delete whose cached copy was stale;
- a pod exec/attach/port-forward with the same facts as one refused within `retry_window`
  seconds is still decided afresh (a Grant may have arrived since), but a refusal again for
  the same reason is not recorded again: it is the same user request.

What a caller could hide with it: nothing that changes the cluster. Deleting the same
object incarnation again, with the same options, while it is already being deleted changes
nothing (a shorter grace period or another propagation policy are other options, hence a
request of its own); a re-created object has a new uid; a denial, another Grant, another
user or group set, a dry run versus a real request are all recorded. The memo never answers
for a decision: a Grant revoked or expired in between denies the repeat, and that denial is
recorded. Updates are never taken for repeats: the API server re-runs admission for each try
of an update (on its cached copy, again on the stored object when the copy was stale or
another client wrote in between), each try with a uid of its own, and nothing in a review
tells a retry from a new request by the same user with certainty (README, Performance). So
each try that changes the count is decided and recorded on the state it was decided on
(the safe side: every try is an admission of a protected change); one that lands on the
count another client just wrote changes nothing and is not routed (threat model 3.11).
With `--apiserver-traces` the API server says which user request each try belongs to, and
the tries of one are recorded once (above). Anything else is a genuinely new request and is
decided and recorded.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import fields
from operator import attrgetter
from typing import Any, Final

from jitgate.webhook.review import AdmissionRequest, Answer

from jitgate.core.actions import AttemptedAction

DEFAULT_CAPACITY: Final = 16_384
DEFAULT_SAME_REQUEST_TTL: Final = 30.0  # the API server gives up on a request after 60 s
DEFAULT_RETRY_WINDOW: Final = 2.0  # kubectl falls back to SPDY at once
RETRIED_VERBS: Final = frozenset({"exec", "attach", "portforward"})
# Seconds within which an allowed DELETE of the same object incarnation, with the same
# options, by the same caller is the same user request. Its calls follow one another within
# the request (milliseconds; seconds on a loaded API server), and a repeat changes nothing.
DEFAULT_REPEAT_WINDOW: Final = 10.0

# What the decision depends on, as one flat tuple of atoms (`facts_of`). Flat, because the
# memo keeps 16,384 of them: each tuple a remembered review keeps counts towards the garbage
# collector's next young collection (~3 ms), and nested facts made 15 per review, so while the
# memo filled a collection came every ~600 reviews (~4.8 us a review). Atoms only, so that
# CPython stops tracking the tuple at the first collection it survives.
Facts = tuple[object, ...]
# Which Grant allowed an action: (namespace, name, uid).
GrantId = tuple[str, str, str]


# Types whose values are marked by their type (a type object: never equal to a value); a
# string, nearly every value, stands for itself.
_MARKED: Final = frozenset({bool, int, float, type(None)})


def _flatten(value: Any, into: list[object]) -> None:
    """Append `value` (JSON-like: dicts, lists, scalars) to `into` as atoms, dicts in key
    order: each dict or list after its type and size, each scalar but a string after its type
    (True and 1 are different facts), so that two values are appended alike exactly when they
    are equal as JSON of the same types. A fraction of the cost of encoding it as JSON."""
    kind = type(value)
    if kind is str:
        into.append(value)
    elif kind in _MARKED:
        into += kind, value
    elif isinstance(value, dict):
        into += dict, len(value)
        for key in sorted(value):
            into.append(key)
            _flatten(value[key], into)
    elif isinstance(value, list | tuple):
        into += list, len(value)
        for item in value:
            _flatten(item, into)
    elif isinstance(value, str | int | float | bool):  # a subclass of one
        into += kind, value
    else:
        into += object, str(value)


# `attempted` as equal to another as the action itself is (every field but `detail`, as a
# tuple), holding nothing of its detail: a remembered key must not keep a review's objects
# (a deleted pod) alive.
_action: Final[Callable[[AttemptedAction], tuple[Hashable, ...]]] = attrgetter(
    *(field.name for field in fields(AttemptedAction) if field.compare)
)


def facts_of(
    request: AdmissionRequest, attempted: AttemptedAction, *, old_state: bool = True
) -> Facts:
    """What the decision depends on: who, exactly what, and whether it is a dry run; the
    detail (without its digest) last, so that nothing may follow the facts in a key.
    Without `old_state`: not the count a change of replicas starts from either, which is
    what differs between the API server's tries of one update.

    Not the deleted object's digest: a DELETE is validated against the cached object and
    again against the stored one, whose resourceVersion (and deletion stamp) may differ.
    """
    groups = request.groups
    into: list[object] = [request.user, request.is_dry_run, len(groups), *groups]
    into += _action(attempted)  # a fixed number of fields
    detail = attempted.detail
    for key in sorted(detail):
        if key == "digest":
            continue
        into.append(key)
        value = detail[key]
        if key == "replicas" and not old_state and isinstance(value, dict):
            value = value.get("new")
        _flatten(value, into)
    return tuple(into)


def repeat_of(
    request: AdmissionRequest,
    attempted: AttemptedAction,
    caller: str = "",
    facts: Facts | None = None,
    trace: str | None = None,
) -> Facts | None:
    """What makes two reviews with different uids one user request (see the module's rules):
    their `trace` id when the API server's is trusted (`traces.request_of`), else for a
    DELETE its object incarnation; None for a review whose every call is a request of its
    own. `facts` are the attempt's (`facts_of`), when the caller has them already.

    Not the old state (digest, resourceVersion, deletion stamp): that is what changes between
    the API server's calls for one DELETE. Only a DELETE naming the object's uid: an eviction
    does not, and a pod re-created under the same name must never share its predecessor's
    record.
    """
    if trace is not None:
        return ("trace", caller, trace, *facts_of(request, attempted, old_state=False))
    if request.operation != "DELETE" or attempted.verb != "delete":
        return None
    incarnation = ((request.old_object or {}).get("metadata") or {}).get("uid")
    if not isinstance(incarnation, str) or not incarnation:
        return None
    into: list[object] = ["incarnation", caller, incarnation]
    _flatten(request.options, into)  # says where it ends
    return (*into, *(facts or facts_of(request, attempted)))


class DecisionMemo:
    """Recent answers by review uid, allowed deletes by what they deleted (and refused
    connects by their facts); not thread-safe: used from the event loop only."""

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        same_request_ttl: float = DEFAULT_SAME_REQUEST_TTL,
        retry_window: float = DEFAULT_RETRY_WINDOW,
        repeat_window: float = DEFAULT_REPEAT_WINDOW,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._same_request_ttl = same_request_ttl
        self._retry_window = retry_window
        self._repeat_window = repeat_window
        self._monotonic = monotonic
        self._answers: OrderedDict[Hashable, tuple[float, Answer, GrantId | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def recall(self, uid: str, facts: Facts, caller: str = "") -> Answer | None:
        """The answer already given to this review (same uid, same facts, same caller)."""
        found = self._live(("uid", uid, caller, *facts))
        return found[0] if found is not None else None

    def refused_just_now(self, facts: Facts, attempted: AttemptedAction, message: str) -> bool:
        """Whether this connect repeats one refused within the retry window, for the same
        reason (`message`)."""
        if attempted.verb not in RETRIED_VERBS:
            return False
        earlier = self._live(("retry", *facts))
        return earlier is not None and earlier[0].message == message

    def allowed_just_now(self, repeat: Facts, grant: GrantId) -> Answer | None:
        """The answer (and so the record) of the same user request, allowed within its
        window by the same Grant that allows this review again."""
        earlier = self._live(("repeat", *repeat))
        if earlier is None or earlier[1] != grant:
            return None
        return earlier[0]

    def remember(
        self,
        uid: str,
        facts: Facts,
        attempted: AttemptedAction,
        answer: Answer,
        caller: str = "",
    ) -> None:
        now = self._monotonic()
        self._put(("uid", uid, caller, *facts), now + self._same_request_ttl, answer, None)
        if not answer.allowed and attempted.verb in RETRIED_VERBS:
            self._put(("retry", *facts), now + self._retry_window, answer, None)

    def remember_allowed(self, repeat: Facts, grant: GrantId, answer: Answer) -> None:
        """An allow whose record is durable: its repeats within the window share it."""
        self._put(("repeat", *repeat), self._monotonic() + self._repeat_window, answer, grant)

    def _live(self, key: Hashable) -> tuple[Answer, GrantId | None] | None:
        found = self._answers.get(key)
        if found is None:
            return None
        expires, answer, grant = found
        if expires > self._monotonic():
            return answer, grant
        del self._answers[key]
        return None

    def _put(self, key: Hashable, expires: float, answer: Answer, grant: GrantId | None) -> None:
        self._answers[key] = (expires, answer, grant)
        self._answers.move_to_end(key)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
