"""jitgate installed in front of a real kube-apiserver: CRDs, the chart's RBAC, policy and
webhook configurations, the webhook and operator as local processes, persona RBAC.

:func:`install` does it all on a running :class:`KubeAPIServer` (see
tests/apiserver/harness.py) and yields a :class:`JitCluster` that runs the real ``kubectl``
and ``kubectl jit`` as each persona and reads both audit logs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
from apiserver.harness import KubeAPIServer, Kwok, free_port
from chart import render
from e2e import manifests, processes
from e2e.processes import HttpAnswer, LocalProcess
from support import objects, personas

REPO = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO / "crds"
BIN = Path(sys.executable).parent  # jitgate and kubectl-jit are installed next to python
WEBHOOK_WRITER = "webhook-0"
OPERATOR_WRITER = "operator-0"
READY_TIMEOUT_S = 60.0
PROBE_POD = "jitgate-probe"
# A klog line of kubectl's own: "E1204 17:02:31.376962    2600 websocket.go:297] …".
_KLOG = re.compile(r"[EIWF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")

# One request per object (client-side apply also reads each one first: 5x slower).
SERVER_SIDE_APPLY = ("apply", "--server-side", "--field-manager=jitgate-e2e", "-f", "-")

Obj = dict[str, Any]
Echo = Callable[[str], object]


def denied_by(hook: str) -> str:
    """How kubectl prints a refusal by one of jitgate's action webhooks."""
    return f'Error from server (Forbidden): admission webhook "{hook}.actions.jitgate.dev" denied'


def as_list(objects: Iterable[Obj]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})


@dataclass(frozen=True)
class HelmCluster:
    """A kube-apiserver of its own and Helm configured for it, for real releases."""

    api: KubeAPIServer
    helm: helm.Config


# A path the aggregator proxies to the session gateway (the group's own document it serves
# itself).
GATEWAY_DISCOVERY = "/apis/sessions.jitgate.dev/v1alpha1"


@dataclass
class JitCluster:
    """The API server with jitgate installed; helpers run kubectl as a persona."""

    api: KubeAPIServer
    tmpdir: Path
    webhook: LocalProcess
    operator: LocalProcess
    webhook_url: str
    webhook_audit: Path
    operator_audit: Path
    audit_key: Path
    setup_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    # The checkpoint key's public half, when the writers sign checkpoints.
    verifier_key: Path | None = None
    # kwok, the kubelet of manifests.KWOK_NODE, when the tier runs it.
    kwok: Kwok | None = None
    # The webhook process's session gateway port, when the API server has a front proxy.
    gateway_port: int | None = None
    # The webhook's command line for (port, audit directory, writer id): another replica.
    webhook_argv: Callable[[int, Path, str], list[str]] | None = None

    # -- processes

    @property
    def processes(self) -> list[LocalProcess]:
        return [self.webhook, self.operator]

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    @contextlib.contextmanager
    def webhook_replica(self, writer: str) -> Iterator[str]:
        """Another webhook process (a second replica: same identity, its own audit log and
        writer id), not in the API server's configuration; its URL once it is ready."""
        assert self.webhook_argv is not None
        port = free_port()
        argv = self.webhook_argv(port, self.tmpdir / f"{writer}-audit", writer)
        process = processes.LocalProcess(writer, argv, self.tmpdir / f"{writer}.log").start()
        url = f"https://127.0.0.1:{port}"
        try:
            processes.wait_until(
                f"webhook replica {writer} ready",
                lambda: _ready_text(processes.https_get(f"{url}/readyz", self.api.ca_file)),
                timeout=READY_TIMEOUT_S,
                alive=[process],
            )
            yield url
        finally:
            process.stop()

    @contextlib.contextmanager
    def gateway_replica(self, writer: str, *flags: str) -> Iterator[None]:
        """Another webhook process serving the session gateway with ``flags`` (its bounds,
        say), the one the API server proxies sessions to while the block runs; it records
        into the audit log ``writer`` (``audit(writer, ...)``). The main webhook still decides
        every admission review."""
        assert self.webhook_argv is not None and self.api.front_proxy is not None
        assert self.gateway_port is not None
        port, gateway_port = free_port(), free_port()
        argv = [
            *self.webhook_argv(port, self.tmpdir / f"{writer}-audit", writer),
            "--gateway-port", str(gateway_port),
            "--requestheader-client-ca", str(self.api.front_proxy.client_ca),
            "--requestheader-allowed-names", self.api.front_proxy.client_name,
            *flags,
        ]  # fmt: skip
        process = processes.LocalProcess(writer, argv, self.tmpdir / f"{writer}.log").start()
        try:
            processes.wait_until(
                f"webhook replica {writer} ready",
                lambda: _ready_text(
                    processes.https_get(f"https://127.0.0.1:{port}/readyz", self.api.ca_file)
                ),
                timeout=READY_TIMEOUT_S,
                alive=[process],
            )
            self._route_sessions(gateway_port)
            yield
        finally:
            self._route_sessions(self.gateway_port)
            process.stop()

    def _route_sessions(self, port: int) -> None:
        """Point the session gateway's APIService at ``port`` and wait until the aggregator
        proxies there: first to a closed port until it fails, so that the next success can
        only be the new gateway answering."""
        for target, answers in ((1, False), (port, True)):
            patch = json.dumps({"spec": {"service": {"port": target}}})
            self.api.kubectl(
                "admin", "patch", "apiservice", "v1alpha1.sessions.jitgate.dev",
                "--type=merge", "-p", patch, check=True,
            )  # fmt: skip

            def routed(answers: bool = answers) -> tuple[bool, str]:
                got = self.api.kubectl("admin", "get", "--raw", GATEWAY_DISCOVERY)
                return (got.returncode == 0) == answers, got.stderr.strip()

            processes.wait_until(f"sessions proxied to port {target}", routed, timeout=60)

    # -- kubectl

    def env(self) -> dict[str, str]:
        return self.api.kubectl_env()  # with kubectl-jit on PATH

    def kubectl_argv(self, who: str, *args: str) -> list[str]:
        """kubectl's command line as ``who``, to run with :meth:`env` (a long-lived
        connection: see e2e/streams.py)."""
        return self.api.kubectl_argv(who, *args)

    def kubectl(
        self, who: str, *args: str, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """The real kubectl as persona ``who``; never raises on a non-zero exit."""
        return subprocess.run(
            self.api.kubectl_argv(who, *args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )

    def ok(self, who: str, *args: str, input: str | None = None) -> str:
        """kubectl that must succeed; its stdout."""
        proc = self.kubectl(who, *args, input=input)
        command = " ".join(args)
        assert proc.returncode == 0, (
            f"kubectl {command} as {who} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
        )
        return proc.stdout

    def jit(self, who: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``kubectl jit`` (the plugin, found on PATH by kubectl) as persona ``who``."""
        argv = [self.api.kubectl_path, "jit", "--kubeconfig", str(self.api.kubeconfig(who)), *args]
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )

    def apply(self, who: str, *objects: Obj) -> str:
        return self.ok(who, *SERVER_SIDE_APPLY, input=as_list(objects))

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """The object as admin, or None when it does not exist."""
        where = ["-n", namespace] if namespace else []
        proc = self.kubectl("admin", "get", kind, name, *where, "-o", "json")
        if proc.returncode != 0:
            if "NotFound" in proc.stderr or "not found" in proc.stderr:
                return None
            raise AssertionError(f"kubectl get {kind} {name}: {proc.stderr}")
        obj: Obj = json.loads(proc.stdout)
        return obj

    def wait(self, who: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """``kubectl wait ... --timeout`` (a watch, so no polling here)."""
        return self.kubectl(who, "wait", f"--timeout={timeout:.0f}s", *args, timeout=timeout + 15)

    def wait_phase(self, namespace: str, name: str, phase: str, timeout: float = 30.0) -> Obj:
        """Wait for an AccessRequest's ``status.phase``; the request as it is then."""
        proc = self.wait(
            "admin",
            f"--for=jsonpath={{.status.phase}}={phase}",
            f"accessrequest/{name}",
            "-n",
            namespace,
            timeout=timeout,
        )
        request = self.get("accessrequest", name, namespace)
        assert proc.returncode == 0, (
            f"AccessRequest {namespace}/{name} did not become {phase}: {proc.stderr}\n"
            f"{json.dumps((request or {}).get('status'), indent=1)}"
        )
        assert request is not None
        return request

    def granted(self, *request: str, name: str, namespace: str = "prod") -> str:
        """alice asks with ``kubectl jit request …``, bob approves; the Grant's name."""
        asked = self.jit(
            "alice", "request", *request, "-n", namespace, "--for", "3m", "--name", name
        )
        assert asked.returncode == 0, asked.stderr
        return self.approved(name, namespace)

    def approved(self, name: str, namespace: str = "prod") -> str:
        """bob approves the pending AccessRequest ``name``; the Grant's name."""
        self.wait_phase(namespace, name, "Pending")
        approved = self.jit("bob", "approve", name, "-n", namespace, "--yes")
        assert approved.returncode == 0, approved.stderr
        grant: str = self.wait_phase(namespace, name, "Approved")["status"]["grant"]["name"]
        return grant

    def exec(
        self, who: str, namespace: str, pod: str, *command: str
    ) -> subprocess.CompletedProcess[str]:
        """`kubectl exec`; stderr without kubectl's own klog diagnostics (its WebSocket client
        sometimes logs "Unknown stream id 1, discarding message" as a stream closes), so it
        holds what the command and the API server said."""
        proc = self.kubectl(who, "exec", "-n", namespace, pod, "--", *command, timeout=60)
        proc.stderr = "".join(
            line for line in proc.stderr.splitlines(keepends=True) if not _KLOG.match(line)
        )
        return proc

    @property
    def probe_pod(self) -> str:
        """A pod in ``prod`` that the set-up's readiness probe execs into (always denied)."""
        return PROBE_POD

    def no_kubelet_error(self) -> str:
        return self.api.no_kubelet_error(manifests.NODE)

    def create_pods(self, namespace: str, *names: str) -> None:
        """Pods on the node without a kubelet (Pending; a connection fails after admission)."""
        self.apply("admin", *(manifests.pod(namespace, name) for name in names))

    @property
    def node(self) -> Kwok:
        """kwok, the kubelet of :data:`manifests.KWOK_NODE`."""
        assert self.kwok is not None, "this tier runs without kwok"
        return self.kwok

    def run_pods(self, namespace: str, *names: str) -> None:
        """Pods on kwok's node, once Running: exec runs the command in ``node.workdir``."""
        self.apply(
            "admin", *(manifests.pod(namespace, name, node=manifests.KWOK_NODE) for name in names)
        )
        running = self.wait(
            "admin", "--for=jsonpath={.status.phase}=Running", "-n", namespace,
            *(f"pod/{name}" for name in names),
        )  # fmt: skip
        assert running.returncode == 0, f"pods {names} not Running: {running.stderr}"

    def webhook_reviews(self, webhook: str, *, rejected: bool | None = None) -> int:
        """How often the API server has called one of jitgate's webhooks (``webhook``: its
        name, e.g. ``connect.actions.jitgate.dev``), from its own metrics; ``rejected``:
        only the calls it was refused, or only those it was allowed."""
        status, text = self.api.request("GET", "/metrics", who="admin")
        assert status == 200, text
        wanted = "" if rejected is None else f'rejected="{str(rejected).lower()}"'
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith("apiserver_admission_webhook_admission_duration_seconds_count{")
            and f'name="{webhook}"' in line
            and wanted in line
        )

    # -- the audit logs

    def audit_url(self, which: str) -> str:
        """``webhook``, ``operator``, or the writer id of a replica (``gateway_replica``)."""
        known = {"webhook": self.webhook_audit, "operator": self.operator_audit}
        return f"file://{known.get(which, self.tmpdir / f'{which}-audit')}"

    def audit(self, which: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``jitgate audit ARGS --audit <which log> --key-file <key>``."""
        command, *rest = args
        argv = [
            str(BIN / "jitgate"),
            "audit",
            command,
            "--audit",
            self.audit_url(which),
            "--key-file",
            str(self.audit_key),
            *rest,
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    def assert_audit_logs_verify(self) -> None:
        """``jitgate audit verify`` passes on both logs, MACs and signed checkpoints included."""
        for which in ("webhook", "operator"):
            public = ["--verifier-key", str(self.verifier_key)] if self.verifier_key else []
            proc = self.audit(which, "verify", *public)
            assert proc.returncode == 0, (
                f"the {which} audit log does not verify:\n{proc.stdout}{proc.stderr}"
            )

    def records(self, which: str, *filters: str) -> list[Obj]:
        """``jitgate audit query -o json`` with ``filters`` (e.g. ``--request``, ``NAME``)."""
        proc = self.audit(which, "query", "-o", "json", *filters)
        assert proc.returncode == 0, f"audit query {filters}: {proc.stderr}"
        records: list[Obj] = json.loads(proc.stdout)
        return records


# ---------------------------------------------------------------------------- installation


def _ready_text(answer: HttpAnswer) -> tuple[bool, str]:
    body = answer.body.strip()
    return answer.status == 200 and body == "ok", f"{answer.status} {body[:200]}"


@contextlib.contextmanager
def install(
    api: KubeAPIServer,
    tmpdir: Path,
    *,
    echo: Echo,
    on_process: Callable[[LocalProcess], None] = lambda _process: None,
    kwok: Kwok | None = None,
) -> Iterator[JitCluster]:
    """Install jitgate on ``api`` (whose node ``kwok`` runs pods, if given); stop its
    processes on exit.

    ``on_process`` is told about each process as soon as it starts (so a failing start-up
    can still show its log).
    """
    start = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = now - since
        return now

    namespace = manifests.RELEASE_NAMESPACE
    rendered = render.render_chart(manifests.CHART_VALUES, namespace=namespace)

    # CRDs, namespaces, RBAC, the policy and a node: the cluster before jitgate runs.
    step = time.monotonic()
    api.install_crds(CRDS_DIR)
    api.create_node(manifests.NODE)
    objects = [
        *manifests.namespaces(),
        *manifests.chart_rbac(rendered),
        *manifests.persona_rbac(),
        *manifests.policy_reader_rbac(),
        manifests.chart_policy(rendered),
        manifests.pod("prod", PROBE_POD),
    ]
    api.kubectl("admin", *SERVER_SIDE_APPLY, input=as_list(objects), check=True)
    step = lap("cluster objects", step)

    # The webhook and the operator, started together (each takes a second to import).
    # Also the session gateway's certificate: the aggregator checks the Service's DNS name.
    gateway_dns = f"{manifests.GATEWAY_SERVICE}.{namespace}.svc"
    cert, key = api.ca.issue("jitgate-webhook", dns=["localhost", gateway_dns], ips=["127.0.0.1"])
    session_key = tmpdir / "session.key"
    session_key.parent.mkdir(parents=True, exist_ok=True)
    session_key.write_text(secrets.token_hex(32))
    session_key.chmod(0o600)
    gateway_port = free_port()
    audit_key = tmpdir / "audit-hmac.key"
    audit_key.parent.mkdir(parents=True, exist_ok=True)
    audit_key.write_text(secrets.token_hex(32))
    audit_key.chmod(0o600)
    # The checkpoint signer key, made as an operator would; auditors get the verifier key.
    checkpoint_key, verifier_key = tmpdir / "checkpoint.key", tmpdir / "checkpoint.pub"
    made = subprocess.run(
        [str(BIN / "jitgate"), "audit", "keygen", "jitgate.e2e", "--out", str(checkpoint_key)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    verifier_key.write_text(made.stdout)
    webhook_audit, operator_audit = tmpdir / "webhook-audit", tmpdir / "operator-audit"

    def webhook_argv(port: int, audit: Path, writer: str) -> list[str]:
        return [
            str(BIN / "jitgate"), "webhook",
            "--host", "127.0.0.1", "--port", str(port),
            "--tls-cert", str(cert), "--tls-key", str(key),
            *(["--client-ca", str(api.webhook_client_ca)] if api.webhook_client_ca else []),
            *(["--apiserver-traces"] if api.traced else []),
            "--audit", f"file://{audit}", "--audit-key-file", str(audit_key),
            "--checkpoint-key", str(checkpoint_key),
            "--writer-id", writer,
            "--kubeconfig", str(api.kubeconfig("jitgate-webhook")),
            "--operator-user", personas.OPERATOR_USER,
            "--session-key", str(session_key),
        ]  # fmt: skip

    gateway = [
        "--gateway-port", str(gateway_port),
        "--requestheader-client-ca", str(api.front_proxy.client_ca),
        "--requestheader-allowed-names", api.front_proxy.client_name,
    ] if api.front_proxy else []  # fmt: skip
    argv = {
        "webhook": lambda port: [*webhook_argv(port, webhook_audit, WEBHOOK_WRITER), *gateway],
        "operator": lambda port: [
            str(BIN / "jitgate"), "operator", "--standalone", "--all-namespaces",
            "--audit", f"file://{operator_audit}", "--audit-key-file", str(audit_key),
            "--checkpoint-key", str(checkpoint_key),
            "--writer-id", OPERATOR_WRITER,
            "--kubeconfig", str(api.kubeconfig("jitgate-operator")),
            "--liveness", f"http://127.0.0.1:{port}/healthz",
            "--poll-interval", "0.5",
        ],
    }  # fmt: skip
    ready = {
        "webhook": lambda port: _ready_text(
            processes.https_get(f"https://127.0.0.1:{port}/readyz", api.ca_file)
        ),
        "operator": lambda port: _live(processes.http_get(f"http://127.0.0.1:{port}/healthz")),
    }
    launched: list[LocalProcess] = []

    def launch(name: str) -> tuple[LocalProcess, int]:
        port = free_port()
        process = processes.LocalProcess(name, argv[name](port), tmpdir / f"{name}.log")
        process.start()
        launched.append(process)
        on_process(process)
        return process, port

    def wait_ready(name: str, process: LocalProcess, port: int) -> tuple[LocalProcess, int]:
        """Until it answers; relaunched on another port if its port was taken meanwhile."""
        for attempt in range(3):
            try:
                processes.wait_until(
                    f"the {name} answering on 127.0.0.1:{port}",
                    functools.partial(ready[name], port),
                    timeout=READY_TIMEOUT_S,
                    alive=[process],
                )
                return process, port
            except processes.ProcessExited:
                if attempt == 2 or "address already in use" not in process.tail(20):
                    raise
                process, port = launch(name)
        raise AssertionError("unreachable")

    try:
        started = {name: launch(name) for name in ("webhook", "operator")}
        webhook, port = wait_ready("webhook", *started["webhook"])
        step = lap("webhook ready", step)
        cluster = JitCluster(
            api=api,
            tmpdir=tmpdir,
            webhook=webhook,
            operator=started["operator"][0],
            webhook_url=f"https://127.0.0.1:{port}",
            webhook_audit=webhook_audit,
            operator_audit=operator_audit,
            audit_key=audit_key,
            verifier_key=verifier_key,
            timings=timings,
            kwok=kwok,
            webhook_argv=webhook_argv,
        )

        # The chart's webhook configurations, pointed at the local process.
        api.apply(
            "admin",
            *render.webhook_configurations_for_url(
                cluster.webhook_url, api.ca.pem, manifests.CHART_VALUES, namespace=namespace
            ),
        )
        wait_effective(cluster)
        step = lap("webhook configurations effective", step)
        if api.front_proxy is not None:
            cluster.gateway_port = gateway_port
            api.apply("admin", *manifests.session_gateway(gateway_port, api.ca.pem))
            wait_gateway_available(cluster)
            step = lap("session gateway available", step)

        cluster.operator, _ = wait_ready("operator", *started["operator"])
        lap("operator live", step)
        cluster.setup_seconds = time.monotonic() - start
        echo(
            f"jitgate installed in {cluster.setup_seconds:.2f} s ("
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
            + f"); logs {cluster.webhook.log_file}, {cluster.operator.log_file}"
        )
        yield cluster
    finally:
        for process in reversed(launched):
            code = process.stop()
            if code not in (None, 0):
                echo(f"{process.name} exited with {code} at teardown (log {process.log_file})")


def wait_gateway_available(cluster: JitCluster) -> None:
    """Until the API server's aggregator finds the session gateway's APIService Available."""

    def available() -> tuple[bool, str]:
        answer = cluster.api.kubectl(
            "admin", "get", "apiservice", "v1alpha1.sessions.jitgate.dev",
            "-o", "jsonpath={.status.conditions[?(@.type=='Available')]}",
        )  # fmt: skip
        return '"status":"True"' in answer.stdout, answer.stdout.strip() or answer.stderr.strip()

    processes.wait_until(
        "the session gateway's APIService becoming Available", available, timeout=60
    )


def _live(answer: HttpAnswer) -> tuple[bool, str]:
    return answer.status == 200, f"{answer.status} {answer.body[:200]}"


def wait_effective(cluster: JitCluster) -> None:
    """Until the API server calls the webhook: configurations reach it through an informer.

    Both configurations are probed with requests the webhook refuses or rewrites: an exec
    into the probe pod (validating), a server-side dry run of an AccessRequest that names
    someone else as its requester (mutating: the stored requester is the caller).
    """
    hook = 'admission webhook "connect.actions.jitgate.dev" denied the request'

    def validating() -> tuple[bool, str]:
        proc = cluster.exec("alice", "prod", PROBE_POD, "true")
        return hook in proc.stderr, proc.stderr.strip()[:300]

    probe = objects.access_request(
        "jitgate-probe",
        "prod",
        actions=[{"verb": "exec", "names": [PROBE_POD]}],
        reason="probe",
        requester=objects.requester("mallory", ()),
    )

    def mutating() -> tuple[bool, str]:
        proc = cluster.kubectl(
            "alice", "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(probe)
        )
        if proc.returncode != 0:
            return False, proc.stderr.strip()[:300]
        requester = json.loads(proc.stdout)["spec"].get("requester") or {}
        return requester.get("user") == "alice", f"requester {requester}"

    for what, check in (("validating", validating), ("mutating", mutating)):
        processes.wait_until(
            f"the {what} webhook configuration taking effect",
            check,
            timeout=READY_TIMEOUT_S,
            interval=0.5,
            alive=cluster.processes,
        )


def gateway_refusal(c: JitCluster, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """The status and message the session gateway answers a request sent to its port
    directly, not through the API server's front proxy (any `headers` claiming a user)."""
    assert c.gateway_port is not None
    context = ssl.create_default_context(cafile=str(c.api.ca_file))
    context.check_hostname = False
    request = urllib.request.Request(f"https://127.0.0.1:{c.gateway_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())["message"]
