"""Streams that must go through the session gateway (a policy's `sessions.recording:
Required`), and markers that did not verify.

The webhook tells these rules whether a stream carries a valid gateway marker
(`jitgate.webhook.gateway.marker`); they say what is refused and give the command that works.
"""

from __future__ import annotations

from jitgate.core import shell
from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.protected import Verdict
from jitgate.core.next_steps import connect_command

STREAM_VERBS = ("exec", "attach", "portforward")
RECORDING_REQUIRED = "RecordingRequired"
FORGED_MARKER = "SessionMarkerInvalid"


def session_command(attempted: AttemptedAction) -> str:
    """The `kubectl jit exec|attach|port-forward` that opens this stream through the gateway."""
    kubectl = connect_command(attempted.verb, recorded=True)
    if attempted.verb == "portforward":
        listed = attempted.detail.get("ports")
        ports = [str(port) for port in listed] if isinstance(listed, list) else []
        words = [
            *kubectl,
            "-n",
            attempted.namespace,
            f"pod/{attempted.name}",
            *(ports or ["LOCAL:REMOTE"]),
        ]
        return shell.join(words)
    words = [*kubectl, "-n", attempted.namespace, attempted.name]
    if attempted.container:
        words += ["-c", attempted.container]
    if attempted.interactive:
        words.append("-it")
    if attempted.verb == "exec" and attempted.command:
        words += ["--", *attempted.command]
    return shell.join(words)


def through_gateway(
    attempted: AttemptedAction, verdict: Verdict | None, *, session: str | None
) -> Verdict | None:
    """`verdict` naming the gateway's `session` when the stream carries its verified marker;
    otherwise, where a governing policy requires recording, a denial saying how to connect
    through the gateway."""
    if verdict is None or attempted.verb not in STREAM_VERBS:
        return verdict
    if session is not None:
        return verdict._replace(session=session)
    governing = verdict.governing
    if governing is None or not governing.recording_required:
        return verdict
    command = session_command(attempted)
    hint = f"connect through jitgate's session gateway, which records it: {command}"
    if not verdict.allowed:
        return Verdict(False, f"{verdict.message}; once granted, {hint}", verdict.reason, governing)
    verb = "requires" if len(governing.names) == 1 else "require"
    return Verdict(
        False,
        f"jitgate denied {attempted.describe()}: {governing.describe()} {verb} sessions to be "
        f"recorded; {hint}",
        RECORDING_REQUIRED,
        governing,
        verdict.grant,
    )


def forged_marker(attempted: AttemptedAction, problem: str) -> Verdict:
    """The denial of a stream whose gateway marker did not verify."""
    return Verdict(
        False,
        f"jitgate denied {attempted.describe()}: it carries {problem}; sessions through "
        f"jitgate's gateway are opened with: {session_command(attempted)}",
        FORGED_MARKER,
    )
