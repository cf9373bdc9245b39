"""AccessPolicy `autoApprove`: CEL rules that approve a request without a person.

A rule sees three variables (README: Auto-approval):

* `request`   — `name`, `namespace`, `namespaceLabels`, `actions` (each `verb`, `resource`,
  `names`, `container` ("" = any), `command` ([] = any, an interactive shell included)),
  `durationSeconds` (the grant length it would get), `reason`, `ticket` ("" = none);
* `requester` — `user`, `groups`, as the webhook stamped them;
* `time`      — `weekday` (Mon ... Sun), `hour`, `minute`, `date` (YYYY-MM-DD) and `timeZone`,
  in the rule set's time zone (`autoApprove.timeZone`, else the schedule's, else UTC).

The first rule that evaluates to exactly `true` approves under its policy; the approval names
the rule and the sha256 digest of the canonical JSON of those inputs. Anything else approves
nothing: false, a non-boolean, an evaluation error (recorded), a rule that does not compile
(the policy is then not Ready). Cost is bounded: an expression is at most 2,048 characters,
comprehensions (all, exists, exists_one, map, filter) nest at most two deep, and every input
list is bounded by the API's limits. Never for break-glass.

The CEL implementation is `common-expression-language` (Rust, through PyO3), imported only
when a rule is compiled: the light `kubectl jit` client never needs it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jitgate.core.api import WEEKDAYS, AccessPolicy, AccessRequest
from jitgate.core.canonical import digest
from jitgate.core.schedule import zone

MAX_NESTING = 2
_MACRO = re.compile(r"\.\s*(all|exists_one|exists|map|filter)\s*$")
_TOKEN = re.compile(r"""'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|[()]""", re.S)


def time_zone(policy: AccessPolicy) -> str:
    rules, schedule = policy.spec.auto_approve, policy.spec.schedule
    if rules is not None and rules.time_zone:
        return rules.time_zone
    return schedule.time_zone if schedule is not None else "UTC"


def inputs(
    request: AccessRequest,
    namespace_labels: Mapping[str, str],
    duration: dt.timedelta,
    at: dt.datetime,
    zone_name: str,
) -> dict[str, Any]:
    """What a rule sees, as JSON: the digest in the approval record is taken over this."""
    spec, meta = request.spec, request.metadata
    requester = spec.requester
    local = at.astimezone(zone(zone_name))
    return {
        "request": {
            "name": meta.name or "",
            "namespace": meta.namespace or "",
            "namespaceLabels": dict(namespace_labels),
            "actions": [
                {
                    "verb": action.verb,
                    "resource": action.effective_resource,
                    "names": list(action.names),
                    "container": action.container or "",
                    "command": list(action.command or ()),
                }
                for action in spec.actions
            ],
            "durationSeconds": int(duration.total_seconds()),
            "reason": spec.reason,
            "ticket": spec.ticket or "",
        },
        "requester": {
            "user": requester.user if requester else "",
            "groups": list(requester.groups) if requester else [],
        },
        "time": {
            "weekday": WEEKDAYS[local.weekday()],
            "hour": local.hour,
            "minute": local.minute,
            "date": local.date().isoformat(),
            "timeZone": zone_name,
        },
    }


# What a compiled rule is checked against for names it does not know (CEL compiles syntax
# only; an unknown variable or function shows up when evaluated).
_PROBE = {
    "request": {
        "name": "",
        "namespace": "",
        "namespaceLabels": {},
        "actions": [],
        "durationSeconds": 0,
        "reason": "",
        "ticket": "",
    },
    "requester": {"user": "", "groups": []},
    "time": {"weekday": "Mon", "hour": 0, "minute": 0, "date": "2026-01-05", "timeZone": "UTC"},
}


def nesting(expression: str) -> int:
    """How deep comprehension macros nest (parentheses inside string literals skipped)."""
    stack: list[bool] = []
    deepest = 0
    for token in _TOKEN.finditer(expression):
        if token.group() == "(":
            stack.append(_MACRO.search(expression[: token.start()]) is not None)
            deepest = max(deepest, sum(stack))
        elif token.group() == ")" and stack:
            stack.pop()
    return deepest


def _is_panic(error: BaseException) -> bool:
    """A panic inside the Rust library (pyo3's PanicException derives from BaseException):
    a failed rule like any other, never a crashed operator."""
    return type(error).__name__ == "PanicException"


@lru_cache(maxsize=512)
def compiled(expression: str) -> Any:
    """The compiled program, or the reason it does not compile (a str)."""
    import cel  # the server extra: only the operator evaluates rules

    if nesting(expression) > MAX_NESTING:
        return f"comprehensions nest more than {MAX_NESTING} deep"
    try:
        program = cel.compile(expression)
    except BaseException as error:  # ValueError, or a Rust panic (a BaseException)
        if not isinstance(error, Exception) and not _is_panic(error):
            raise
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    try:
        program.execute(_PROBE)
    except RuntimeError as error:
        if "Undefined variable or function" in str(error):
            return str(error).split(". Check")[0]
    except BaseException as error:  # other errors depend on the inputs, not on the rule
        if not isinstance(error, Exception) and not _is_panic(error):
            raise
    return program


def problems(policy: AccessPolicy) -> list[str]:
    """Why rules of this policy do not compile: `rule on-call: <error>`, one per rule."""
    rules = policy.spec.auto_approve
    if rules is None:
        return []
    return [
        f"rule {rule.name}: {result}"
        for rule in rules.rules
        if isinstance(result := compiled(rule.expression), str)
    ]


@dataclass(frozen=True)
class Match:
    """A rule that approved, and what it saw."""

    policy: str
    rule: str
    inputs: dict[str, Any]
    inputs_digest: str


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one policy's rules on a request."""

    policy: str
    match: Match | None
    errors: tuple[str, ...]  # `rule x: error`, for rules that failed (compile or evaluate)


def evaluate(policy: AccessPolicy, facts: dict[str, Any]) -> Evaluation:
    """The first rule of `policy` that is exactly true for `facts`; errors approve nothing.
    A policy whose rules do not all compile approves nothing at all (it is not Ready)."""
    name = policy.metadata.name or ""
    rules = policy.spec.auto_approve
    if rules is None:
        return Evaluation(name, None, ())
    broken = problems(policy)
    if broken:
        return Evaluation(name, None, tuple(broken))
    errors: list[str] = []
    for rule in rules.rules:
        try:
            result = compiled(rule.expression).execute(facts)
        except BaseException as error:  # any failure of a rule approves nothing
            if not isinstance(error, Exception) and not _is_panic(error):
                raise
            errors.append(f"rule {rule.name}: {type(error).__name__}: {error}")
            continue
        if result is True:
            return Evaluation(name, Match(name, rule.name, facts, digest(facts)), tuple(errors))
        if not isinstance(result, bool):
            errors.append(f"rule {rule.name}: returned {type(result).__name__}, not a bool")
    return Evaluation(name, None, tuple(errors))


def evaluate_all(
    policies: Sequence[AccessPolicy],
    request: AccessRequest,
    namespace_labels: Mapping[str, str],
    duration: dt.timedelta,
    at: dt.datetime,
) -> list[Evaluation]:
    """Each policy with rules, evaluated; never for break-glass."""
    if request.spec.break_glass:
        return []
    return [
        evaluate(p, inputs(request, namespace_labels, duration, at, time_zone(p)))
        for p in policies
        if p.spec.auto_approve is not None
    ]
