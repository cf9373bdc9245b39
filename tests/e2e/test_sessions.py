"""Sessions through jitgate's session gateway, end to end: `kubectl jit exec|attach|
port-forward` reach kwok's pods through the real API server's aggregation layer (its
front-proxy certificate, impersonation, the webhook's check of the gateway's marker), are
recorded in the webhook's audit chain, and are cut when their grant expires or is revoked, or
when they are idle. Where a policy requires recording, a direct exec is refused with the
`kubectl jit exec` command that works."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shlex
import socket
import subprocess
import time
from typing import Any

import pytest
import yaml
from e2e import manifests, streams
from e2e.cluster import gateway_refusal

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

RECORDED = "recorded"  # a namespace whose policy requires recording, with an idle timeout
IDLE = 4  # seconds
RECORDING_POLICY = {
    "apiVersion": "jitgate.dev/v1alpha1",
    "kind": "AccessPolicy",
    "metadata": {"name": "recorded-sessions"},
    "spec": {
        "namespaces": {"names": [RECORDED]},
        "actions": ["exec", "attach", "portforward"],
        "approvers": {"groups": ["sre"]},
        "maxDuration": "1h",
        "defaultDuration": "15m",
        "sessions": {"recording": "Required", "idleTimeout": f"{IDLE}s"},
    },
}
DENIED = 'Error from server (Forbidden): admission webhook "connect.actions.jitgate.dev" denied'


def session_records(
    c: Any, session: str | None = None, log: str = "webhook"
) -> list[dict[str, Any]]:
    records = [r for r in c.records(log) if r["type"].startswith("session.")]
    return [r for r in records if session is None or r.get("session") == session]


def last_session(c: Any, grant: str, log: str = "webhook") -> list[dict[str, Any]]:
    """The records of the latest session under ``grant`` in the audit log ``log``."""
    started = [
        r
        for r in session_records(c, log=log)
        if r["type"] == "session.started" and r["grant"] == grant
    ]
    assert started, f"no session under grant {grant}"
    return session_records(c, started[-1]["session"], log)


def sessions_of(c: Any, grant: str) -> list[list[dict[str, Any]]]:
    """The records of each session under ``grant``, oldest first."""
    records = session_records(c)
    started = [
        r["session"] for r in records if r["type"] == "session.started" and r["grant"] == grant
    ]
    return [[r for r in records if r.get("session") == session] for session in started]


def recorded(records: list[dict[str, Any]], stream: str) -> bytes:
    chunks = [r["context"] for r in records if r["type"] == "session.chunk"]
    chunks = sorted((c for c in chunks if c["stream"] == stream), key=lambda c: c["chunk"])
    return b"".join(base64.b64decode(chunk["data"]) for chunk in chunks)


def grant_for(
    c: Any, namespace: str, pod: str, name: str, duration: str = "3m", verb: str = "exec"
) -> str:
    asked = c.jit(
        "alice", "request", verb, pod, "-n", namespace, "--for", duration, "--name", name,
        "--reason", "INC-9: look at the worker",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    return str(c.approved(name, namespace))


def jit_argv(c: Any, who: str, *args: str) -> list[str]:
    return [c.api.kubectl_path, "jit", "--kubeconfig", str(c.api.kubeconfig(who)), *args]


@pytest.fixture(scope="module")
def recorded_namespace(jitgate_cluster: Any) -> str:
    c = jitgate_cluster
    c.api.create_namespace(RECORDED, manifests.PROTECTED_LABEL)
    c.apply("admin", *manifests.persona_rbac([RECORDED]), RECORDING_POLICY)
    return RECORDED


def test_exec_through_the_gateway_runs_the_command_and_records_it(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "gw-0")
    grant = grant_for(c, "prod", "gw-0", "gw-exec")

    ran = c.jit("alice", "exec", "-n", "prod", "gw-0", "--", "sh", "-c",
                "echo out; echo err >&2; exit 3")  # fmt: skip

    assert (ran.returncode, ran.stdout) == (3, "out\n"), ran.stderr
    assert "err\n" in ran.stderr
    records = last_session(c, grant)
    started, ended = records[0], records[-1]
    assert started["type"] == "session.started"
    assert started["actor"]["user"] == "alice"
    assert started["action"]["command"] == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert started["context"]["approvers"] == ["bob"]
    assert (recorded(records, "stdout"), recorded(records, "stderr")) == (b"out\n", b"err\n")
    assert (ended["type"], ended["reason"]) == ("session.ended", "exited with code 3")
    # The gateway's own exec was decided by the webhook like any, as alice, and recorded; the
    # decision names the session and the session names the decision: from the approval
    # (grant, request) to the decision to the recording.
    allowed = [r for r in c.records("webhook", "--grant", grant) if r["type"] == "action.allowed"]
    assert [(r["actor"]["user"], r["session"]) for r in allowed] == [("alice", started["session"])]
    decision = {"writer": allowed[0]["writer"], "seq": allowed[0]["seq"]}
    assert started["context"]["decision"] == decision
    listed = c.audit("webhook", "sessions", "--request", "gw-exec", "-o", "json")
    [session] = json.loads(listed.stdout)
    assert session["decision"] == f"{decision['writer']}:{decision['seq']}"
    c.assert_audit_logs_verify()


def test_a_large_fast_output_arrives_whole_every_time_and_is_recorded_whole(
    jitgate_cluster: Any,
) -> None:
    """Several MiB written as fast as the pod can, five times: every byte reaches kubectl
    (the same digest), kubectl exits with the command's code, and the recording holds exactly
    those bytes (the API server closes right after the exit status; its end used to be lost)."""
    c = jitgate_cluster
    c.run_pods("prod", "gw-bulk")
    grant = grant_for(c, "prod", "gw-bulk", "gw-bulk")
    lines = 700_000  # ~4.6 MiB
    expected = "".join(f"{n}\n" for n in range(1, lines + 1)).encode()
    argv = jit_argv(c, "alice", "exec", "-n", "prod", "gw-bulk", "--", "sh", "-c",
                    f"seq 1 {lines}; exit 7")  # fmt: skip
    runs = 5
    for run in range(runs):
        ran = subprocess.run(argv, capture_output=True, timeout=60, env=c.env(), check=False)
        got = hashlib.sha256(ran.stdout).hexdigest()
        assert (len(ran.stdout), got, ran.returncode) == (
            len(expected), hashlib.sha256(expected).hexdigest(), 7,
        ), f"run {run}: {ran.stderr.decode(errors='replace')}"  # fmt: skip

    sessions = sessions_of(c, grant)
    assert len(sessions) == runs
    for own in sessions:
        assert recorded(own, "stdout") == expected
        assert (own[-1]["type"], own[-1]["reason"]) == ("session.ended", "exited with code 7")


def test_a_large_stdin_arrives_whole_every_time_and_is_recorded_whole(
    jitgate_cluster: Any,
) -> None:
    """4 MiB piped into `kubectl jit exec -i`, five times: the command reads exactly that
    many bytes (kwok's exec does not pass stdin's end on, so it does not wait for one), counts
    and digests them, and the recording's stdin holds exactly those bytes. kubectl's bytes
    reach the gateway through the API server's proxy faster than the gateway passes them on,
    so its reader is paused; it serves its port with asyncio's TLS layer, which keeps what is
    still encrypted when the peer closes then (uvloop's dropped it: MagicStack/uvloop#661)."""
    c = jitgate_cluster
    c.run_pods("prod", "gw-stdin")
    grant = grant_for(c, "prod", "gw-stdin", "gw-stdin")
    data = hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32)
    expected = f"{len(data)}\n{hashlib.sha256(data).hexdigest()}  -\n".encode()
    script = (
        f'f="stdin-$$"; head -c {len(data)} > "$f"; wc -c < "$f" | tr -d " "; sha256sum < "$f"; '
        'rm "$f"'
    )
    argv = jit_argv(c, "alice", "exec", "-i", "-n", "prod", "gw-stdin", "--", "sh", "-c", script)
    runs = 5
    for run in range(runs):
        ran = subprocess.run(
            argv, input=data, capture_output=True, timeout=60, env=c.env(), check=False
        )
        assert (ran.stdout, ran.returncode) == (expected, 0), (
            f"run {run}: {ran.stderr.decode(errors='replace')}"
        )

    sessions = sessions_of(c, grant)
    assert len(sessions) == runs
    for own in sessions:
        assert recorded(own, "stdin") == data
        assert (own[-1]["type"], own[-1]["reason"]) == ("session.ended", "exited with code 0")


def test_an_interactive_session_is_recorded_byte_for_byte(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "gw-tty")
    grant = grant_for(c, "prod", "gw-tty", "gw-tty")
    argv = jit_argv(c, "alice", "exec", "-it", "-n", "prod", "gw-tty", "--", "sh")
    with streams.in_terminal(argv, c.env()) as terminal:
        terminal.expect(r"[$#] $")  # the shell's prompt: kubectl's terminal is raw by now
        terminal.send("stty size; echo typed-$((6*7))\r")
        terminal.expect(r"typed-42\r\n")
        terminal.send("exit 5\r")
        assert terminal.finish() == 5

    records = last_session(c, grant)
    assert records[0]["action"]["tty"] is True
    assert recorded(records, "stdin") == b"stty size; echo typed-$((6*7))\rexit 5\r"
    # Everything the user's terminal showed is in the recording, all but kubectl's own last line.
    shown = recorded(records, "stdout") + b"command terminated with exit code 5\r\n"
    assert shown == bytes(terminal.output)
    assert f"{streams.ROWS} {streams.COLUMNS}" in terminal.text
    assert records[-1]["reason"] == "exited with code 5"
    # `jitgate audit replay` plays it back as the user saw it.
    replayed = c.audit("webhook", "replay", records[0]["session"], "--speed", "100")
    assert replayed.returncode == 0, replayed.stderr
    shown_text = recorded(records, "stdout").decode()  # read as text: universal newlines
    assert replayed.stdout == shown_text.replace("\r\n", "\n").replace("\r", "\n")
    listed = c.audit("webhook", "sessions")
    assert records[0]["session"][:8] in listed.stdout, listed.stdout


def test_a_session_opened_shortly_before_expiry_is_cut_in_time(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "gw-expiry")
    grant = grant_for(c, "prod", "gw-expiry", "gw-expiry", duration="25s")
    expires = dt.datetime.fromisoformat(c.get("grant", grant, "prod")["spec"]["expiresAt"])
    ran = c.jit("alice", "exec", "-n", "prod", "gw-expiry", "--", "sleep", "600", timeout=90)
    ended = dt.datetime.now(dt.UTC)

    assert ran.returncode == 1
    assert f"jitgate ended this session: grant {grant} expired at" in ran.stderr
    assert dt.timedelta(0) <= ended - expires < dt.timedelta(seconds=5), (expires, ended)
    last = last_session(c, grant)[-1]
    assert (last["type"], last["reason"]) == ("session.terminated", f"grant expired: grant {grant}")


def test_revoking_the_grant_cuts_the_session(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "gw-revoke")
    grant = grant_for(c, "prod", "gw-revoke", "gw-revoke")
    argv = jit_argv(c, "alice", "exec", "-n", "prod", "gw-revoke", "--", "sh", "-c",
                    "echo started; sleep 600")  # fmt: skip
    with streams.streaming(argv, c.env()) as session:
        session.expect("started\n")
        revoked = c.jit("bob", "revoke", "gw-revoke", "-n", "prod", "--reason", "done")
        assert revoked.returncode == 0, revoked.stderr
        cut = time.monotonic()
        assert session.finish(timeout=15) == 1
        assert time.monotonic() - cut < 5
    assert f"jitgate ended this session: grant {grant} was revoked" in session.text
    last = last_session(c, grant)[-1]
    assert (last["type"], last["reason"]) == ("session.terminated", f"revoked: grant {grant}")


def test_under_required_recording_a_direct_exec_is_refused_with_the_command_that_works(
    jitgate_cluster: Any, recorded_namespace: str
) -> None:
    c = jitgate_cluster
    ns = recorded_namespace
    c.run_pods(ns, "vault-0")
    grant = grant_for(c, ns, "vault-0", "vault-exec")
    # What to run next says so from the start (to whoever may read the policies: here the
    # SREs; the chart's requester role lets requesters read them too).
    shown = c.jit("bob", "show", "vault-exec", "-n", ns)
    assert f"Run:\n  kubectl jit exec -it -n {ns} vault-0 -- sh\n" in shown.stdout, shown.stdout

    direct = c.exec("alice", ns, "vault-0", "cat", "secret")
    assert direct.returncode == 1
    assert direct.stderr.startswith(DENIED), direct.stderr
    assert "recorded-sessions require sessions to be recorded" in direct.stderr
    _, _, hint = direct.stderr.strip().partition("which records it: ")
    assert hint == f"kubectl jit exec -n {ns} vault-0 -c app -- cat secret"
    # The hint works as it is.
    (node_file := c.node.workdir / "secret").write_text("s3cret\n")
    through = c.jit("alice", *shlex.split(hint)[2:])
    assert (through.returncode, through.stdout) == (0, "s3cret\n"), through.stderr
    assert recorded(last_session(c, grant), "stdout") == b"s3cret\n"
    node_file.unlink()


def test_an_idle_session_is_cut(jitgate_cluster: Any, recorded_namespace: str) -> None:
    c = jitgate_cluster
    ns = recorded_namespace
    c.run_pods(ns, "idle-0")
    grant = grant_for(c, ns, "idle-0", "idle-exec")
    argv = jit_argv(c, "alice", "exec", "-it", "-n", ns, "idle-0", "--", "sh")
    with streams.in_terminal(argv, c.env()) as terminal:
        terminal.send("echo awake\r")
        terminal.expect(r"awake\r\n")
        quiet = time.monotonic()
        assert terminal.finish(timeout=IDLE + 10) == 1
        assert IDLE <= time.monotonic() - quiet < IDLE + 5
    assert f"jitgate ended this session: it was idle for {IDLE}s" in terminal.text
    last = last_session(c, grant)[-1]
    assert (last["type"], last["reason"]) == ("session.terminated", f"idle timeout: {IDLE}s")


def test_a_forged_gateway_marker_is_refused(jitgate_cluster: Any, tmp_path: Any) -> None:
    """cluster-admin may impersonate anyone with any user extra: a marker it makes up does not
    verify, so the webhook refuses the exec even though alice holds a grant for it."""
    c = jitgate_cluster
    c.run_pods("prod", "gw-forged")
    grant_for(c, "prod", "gw-forged", "gw-forged")
    config = yaml.safe_load(c.api.kubeconfig("admin").read_text())
    forged = f"v1:{'0' * 32}:{int(time.time()) + 60}:{'ab' * 32}"
    config["users"][0]["user"].update(
        {"as": "alice", "as-groups": ["developers", "system:authenticated"],
         "as-user-extra": {"jitgate.dev/session": [forged]}}
    )  # fmt: skip
    kubeconfig = tmp_path / "forger.yaml"
    kubeconfig.write_text(yaml.safe_dump(config))

    refused = subprocess.run(
        [c.api.kubectl_path, f"--kubeconfig={kubeconfig}", "exec", "-n", "prod", "gw-forged",
         "--", "touch", "forged"],
        capture_output=True, text=True, timeout=60, env=c.env(), check=False,
    )  # fmt: skip

    assert refused.returncode == 1
    assert DENIED in refused.stderr
    assert "a session marker whose signature does not match this stream" in refused.stderr
    assert not (c.node.workdir / "forged").exists()


def test_the_gateway_opens_the_stream_as_the_whole_user(
    jitgate_cluster: Any, tmp_path: Any
) -> None:
    """The API server names the user to the gateway with uid, groups and extras; the gateway
    opens the stream as all of that, so the webhook and RBAC see the same user through the
    gateway as on a direct exec, plus the gateway's marker. (The API server's audit log holds
    the user each exec was admitted as: what the webhook's AdmissionReview says.)"""
    c = jitgate_cluster
    c.run_pods("prod", "gw-whole")
    grant_for(c, "prod", "gw-whole", "gw-whole")
    alice = c.api.persona("alice")
    config = yaml.safe_load(c.api.kubeconfig("admin").read_text())
    config["users"][0]["user"].update(
        {"as": "alice", "as-uid": alice.uid, "as-groups": list(alice.groups),
         "as-user-extra": {manifests.TEAM_EXTRA: ["payments", "on call"]}}
    )  # fmt: skip
    kubeconfig = tmp_path / "alice-with-extras.yaml"
    kubeconfig.write_text(yaml.safe_dump(config))

    for argv in (["exec"], ["jit", "exec"]):
        ran = subprocess.run(
            [c.api.kubectl_path, *argv[:-1], f"--kubeconfig={kubeconfig}", argv[-1], "-n", "prod",
             "gw-whole", "--", "echo", "ran"],
            capture_output=True, text=True, timeout=60, env=c.env(), check=False,
        )  # fmt: skip
        assert (ran.returncode, ran.stdout) == (0, "ran\n"), ran.stderr

    events = [json.loads(line) for line in c.api.audit_log.read_text().splitlines() if line]
    admitted = [
        e["impersonatedUser"] for e in events
        if e["stage"] == "ResponseComplete" and e["objectRef"].get("subresource") == "exec"
        and e["objectRef"].get("name") == "gw-whole"
    ]  # fmt: skip
    direct, through = admitted
    marker = through["extra"].pop("jitgate.dev/session")
    assert marker and marker[0].startswith("v1:")
    assert through == direct
    assert direct["uid"] == alice.uid
    assert direct["extra"] == {manifests.TEAM_EXTRA: ["payments", "on call"]}


def test_the_gateway_answers_only_the_api_servers_front_proxy(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "gw-direct")
    grant_for(c, "prod", "gw-direct", "gw-direct")
    path = (
        "/apis/sessions.jitgate.dev/v1alpha1/namespaces/prod/sessions/kubectl/api/v1/"
        "namespaces/prod/pods/gw-direct/exec?command=touch&command=direct&stdout=true"
    )
    status, message = gateway_refusal(
        c, path,
        {"X-Remote-User": "alice", "X-Remote-Group": "developers",
         "Connection": "Upgrade", "Upgrade": "websocket",
         "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
         "Sec-WebSocket-Protocol": "v5.channel.k8s.io"},
    )  # fmt: skip
    assert status == 401
    assert "answers only the Kubernetes API server's front proxy" in message
    assert not (c.node.workdir / "direct").exists()


def test_gateway_down_means_no_session(jitgate_cluster: Any) -> None:
    """With the APIService pointing where no gateway listens, kubectl jit exec fails and
    runs nothing; under a policy requiring recording there is no other way in."""
    c = jitgate_cluster
    c.run_pods("prod", "gw-down")
    grant_for(c, "prod", "gw-down", "gw-down")
    patch = json.dumps({"spec": {"service": {"port": 1}}})
    c.ok("admin", "patch", "apiservice", "v1alpha1.sessions.jitgate.dev", "--type=merge",
         "-p", patch)  # fmt: skip
    try:
        ran = c.jit("alice", "exec", "-n", "prod", "gw-down", "--", "touch", "down")
        assert ran.returncode == 1
        assert "Error from server (ServiceUnavailable)" in ran.stderr, ran.stderr
        assert not (c.node.workdir / "down").exists()
    finally:
        back = json.dumps({"spec": {"service": {"port": c.gateway_port}}})
        c.ok("admin", "patch", "apiservice", "v1alpha1.sessions.jitgate.dev", "--type=merge",
             "-p", back)  # fmt: skip


def test_attach_through_the_gateway_streams_and_records(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "gw-attach")
    grant = grant_for(c, "prod", "gw-attach", "gw-attach", verb="attach")
    argv = jit_argv(c, "alice", "attach", "-n", "prod", "gw-attach")
    with streams.streaming(argv, c.env()) as attached:
        streams.assert_new_lines(c, attached)
    records = last_session(c, grant)
    assert records[0]["action"]["verb"] == "attach"
    assert b"attached line" in recorded(records, "stdout")
    assert records[-1]["type"] == "session.ended"


def exchange(port: int, payload: bytes) -> bytes:
    """Send `payload` on a fresh local connection, close the sending half and read to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(payload)
        connection.shutdown(socket.SHUT_WR)
        echoed = b""
        while block := connection.recv(65536):
            echoed += block
    return echoed


def test_port_forward_through_the_gateway_records_each_connection(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "gw-forward")
    grant = grant_for(c, "prod", "gw-forward", "gw-forward", verb="portforward")
    argv = jit_argv(c, "alice", "port-forward", "-n", "prod", "pod/gw-forward", ":8080")
    small, large = b"ping through the gateway\n" * 40, bytes(range(256)) * 400  # 1000, 102400
    with streams.port_forward(argv, c.env()) as (_, port):
        # kwok forwards every port to cat: each connection gets back what it sent.
        assert exchange(port, small) == small
        assert exchange(port, large) == large
    records = last_session(c, grant)
    assert records[0]["action"]["verb"] == "portforward"
    assert records[-1]["type"] == "session.ended"
    assert records[-1]["context"]["connections"] == 2
    opened = [r["context"] for r in records if r["type"] == "session.connection"
              and r["context"]["state"] == "opened"]  # fmt: skip
    closed = [r["context"] for r in records if r["type"] == "session.connection"
              and r["context"]["state"] == "closed"]  # fmt: skip
    assert [(o["requestId"], o["port"]) for o in opened] == [("0", 8080), ("1", 8080)]
    assert [(c["requestId"], c["port"], c["bytes"], c["ended"]) for c in closed] == [
        ("0", 8080, {"toPod": 1000, "fromPod": 1000}, "closed"),
        ("1", 8080, {"toPod": 102_400, "fromPod": 102_400}, "closed"),
    ]
    session = records[0]["session"]
    listed = c.audit("webhook", "sessions", "--session", session, "-o", "json")
    [summary] = json.loads(listed.stdout)
    assert (summary["connections"], summary["forwardedBytes"]) == (
        2, {"toPod": 103_400, "fromPod": 103_400}
    )  # fmt: skip
    replayed = c.audit("webhook", "replay", session)
    assert replayed.returncode == 0, replayed.stderr
    assert "no terminal recording; 2 connections" in replayed.stderr
    assert len(replayed.stdout.splitlines()) == 3  # a heading and the two connections
    c.assert_audit_logs_verify()


def test_a_gateway_bounds_sessions_per_user_and_what_one_session_records(
    jitgate_cluster: Any,
) -> None:
    """A gateway with small bounds (the chart's maxSessionsPerUser and maxSessionBytes): a
    second session of one user is refused, saying why; a session that would record more than
    it may is ended, the user told why, and a session.terminated record says so."""
    c = jitgate_cluster
    c.run_pods("prod", "gw-bounds")
    grant = grant_for(c, "prod", "gw-bounds", "gw-bounds")
    bounds = ("--gateway-max-sessions-per-user", "1", "--gateway-max-session-bytes", "65536")
    with c.gateway_replica("gw-bounded", *bounds):
        argv = jit_argv(c, "alice", "exec", "-n", "prod", "gw-bounds", "--", "sh", "-c",
                        "echo started; sleep 600")  # fmt: skip
        with streams.streaming(argv, c.env()) as first:
            first.expect("started\n")
            second = c.jit("alice", "exec", "-n", "prod", "gw-bounds", "--", "touch", "second")
            assert second.returncode == 1
            assert (
                "alice already has 1 session open, the most the gateway allows one user; "
                "close one first" in second.stderr
            ), second.stderr
            assert not (c.node.workdir / "second").exists()
        large = c.jit("alice", "exec", "-n", "prod", "gw-bounds", "--", "sh", "-c",
                      "yes | head -c 200000")  # fmt: skip

    assert large.returncode == 1
    assert (
        "jitgate ended this session: it reached 64 KiB recorded, the most one session may "
        "record" in large.stderr
    ), large.stderr
    assert 0 < len(large.stdout) <= 65536
    records = last_session(c, grant, "gw-bounded")
    last = records[-1]
    assert (last["type"], last["reason"]) == ("session.terminated", "limit: 64 KiB recorded")
    assert recorded(records, "stdout") == large.stdout.encode()
    assert sum(last["context"]["bytes"].values()) <= 65536
