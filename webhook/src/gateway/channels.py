"""The Kubernetes stream protocols the gateway relays, and what it reads from them.

exec and attach speak `v5.channel.k8s.io` or `v4.channel.k8s.io` over WebSocket: every binary
message starts with its channel (0 stdin, 1 stdout, 2 stderr, 3 the error channel carrying the
final `Status`, 4 terminal resize as JSON, 255 in v5: "this channel is closed"). Port-forward
tunnels SPDY through the WebSocket (`SPDY/3.1+portforward.k8s.io`, kubectl 1.31 and later):
relayed as it is, its connections read by `portforward`; the older channel protocol for
port-forward (no request ids, one connection per port) is not spoken, so every port-forward
the gateway relays is one it can account for. The protocol is the one the API server accepted
from the list the client offered, so both sides speak the same one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

STREAM_PROTOCOLS: Final = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORT_FORWARD_PROTOCOLS: Final = ("SPDY/3.1+portforward.k8s.io",)

STDIN: Final = 0
STDOUT: Final = 1
STDERR: Final = 2
ERROR: Final = 3
RESIZE: Final = 4
CLOSE: Final = 255

STREAM_NAMES: Final = {STDIN: "stdin", STDOUT: "stdout", STDERR: "stderr"}


def offered(header: str, supported: tuple[str, ...]) -> tuple[str, ...]:
    """The protocols of a `Sec-WebSocket-Protocol` header the gateway speaks, in the
    client's order of preference."""
    wanted = [part.strip() for part in header.split(",") if part.strip()]
    return tuple(protocol for protocol in wanted if protocol in supported)


def frame(channel: int, data: bytes) -> bytes:
    return bytes((channel,)) + data


def status(message: str, reason: str, code: int) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def status_frame(message: str, reason: str) -> bytes:
    """The error channel's final word when jitgate ends a session: kubectl prints
    `error: <message>` and exits 1."""
    return frame(ERROR, json.dumps(status(message, reason, 403)).encode())


@dataclass(frozen=True)
class Resize:
    width: int
    height: int


def resize_of(data: bytes) -> Resize | None:
    """A resize message's size, or None when it is not one."""
    try:
        size = json.loads(data)
        return Resize(int(size["Width"]), int(size["Height"]))
    except (ValueError, KeyError, TypeError):
        return None


def exit_code_of(data: bytes) -> int | None:
    """The remote command's exit code from the error channel's Status (0 on success); None
    when the Status is not about an exit code."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("status") == "Success":
        return 0
    if body.get("reason") != "NonZeroExitCode":
        return None
    for cause in (body.get("details") or {}).get("causes") or ():
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", ""))
            except ValueError:
                return None
    return None
