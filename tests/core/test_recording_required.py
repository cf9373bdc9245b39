"""`sessions.recording: Required`: direct streams refused with the command that goes through
the session gateway (jitgate.core.admission.recording)."""

from __future__ import annotations

from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.recording import forged_marker, session_command


def test_the_command_that_goes_through_the_gateway() -> None:
    exec_ls = AttemptedAction("exec", "prod", "pods", "web-0", container="app", command=("ls",))
    assert session_command(exec_ls) == "kubectl jit exec -n prod web-0 -c app -- ls"
    shell = AttemptedAction("exec", "prod", "pods", "web-0", command=("sh",), interactive=True)
    assert session_command(shell) == "kubectl jit exec -n prod web-0 -it -- sh"
    attach = AttemptedAction("attach", "prod", "pods", "web-0", interactive=True)
    assert session_command(attach) == "kubectl jit attach -n prod web-0 -it"
    forward = AttemptedAction("portforward", "prod", "pods", "web-0", detail={"ports": [80]})
    assert session_command(forward) == "kubectl jit port-forward -n prod pod/web-0 80"
    unknown = AttemptedAction("portforward", "prod", "pods", "web-0")
    assert session_command(unknown) == "kubectl jit port-forward -n prod pod/web-0 LOCAL:REMOTE"


def test_a_forged_marker_is_refused_with_the_way_in() -> None:
    exec_ls = AttemptedAction("exec", "prod", "pods", "web-0", command=("ls",))
    verdict = forged_marker(exec_ls, "an expired session marker")
    assert not verdict.allowed
    assert verdict.reason == "SessionMarkerInvalid"
    assert verdict.message.endswith("opened with: kubectl jit exec -n prod web-0 -- ls")
