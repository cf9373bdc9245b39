"""Which user request an admission call belongs to, from the W3C trace context the API server
sends with it (`--apiserver-traces`).

The API server may call a webhook several times for one user request: an update is validated
again after a conflict, on the stored object (a contended `deployments/scale`), a delete when
its cached copy was stale. Every call carries a review uid of its own, and nothing in a review
tells a retry from a new request. The trace context does: a kube-apiserver started with a
tracing configuration (`--tracing-config-file`; any sampling rate, 0 included, since a span
not sampled still has its ids) starts a new trace for each request and sends its trace id to
every webhook it calls for that request, in the `traceparent` header.

It is trusted only on that word (the flag), because without a tracing configuration the API
server passes on the `traceparent` its client sent, unchecked: any user could then give two
requests one id. Even with one, the API server continues a trace its client started when the
client is in `system:masters` or `system:monitoring` (`PASSED_ON_FOR`): such a review's trace
id is never taken as a request's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

HEADER: Final = b"traceparent"
# The groups whose own trace the API server continues (its tracing filter treats every other
# caller as a public endpoint and starts a new trace): their requests may share a trace id.
PASSED_ON_FOR: Final = frozenset({"system:masters", "system:monitoring"})

# Version 00: trace id (32 hex, not all zeros), parent span id (16 hex, not all zeros), flags.
_TRACEPARENT: Final = re.compile(
    rb"00-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}", re.ASCII
)


def trace_id(traceparent: bytes) -> str | None:
    """The trace id a `traceparent` header value names, or None when it is not one (W3C Trace
    Context, version 00, as the API server writes it)."""
    found = _TRACEPARENT.fullmatch(traceparent.strip(b" \t"))
    return found.group(1).decode("ascii") if found else None


def trace_in(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The trace id of a request with `headers` (lower-case names, as uvicorn gives them);
    None without exactly one valid `traceparent`."""
    values = [value for name, value in headers if name == HEADER]
    return trace_id(values[0]) if len(values) == 1 else None


def request_of(trace: str | None, groups: Iterable[str]) -> str | None:
    """The user request a review with `trace` by a user in `groups` belongs to: its trace id,
    unless the API server may have continued a trace the user chose (`PASSED_ON_FOR`)."""
    if trace is None or not PASSED_ON_FOR.isdisjoint(groups):
        return None
    return trace
