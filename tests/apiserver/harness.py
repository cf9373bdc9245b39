"""Run a real kube-apiserver (with embedded etcd) for tests: certificates, personas,
kubeconfigs, start-up, readiness and a ``kubectl`` helper; and, next to it, a real
kube-controller-manager (:func:`start_kube_controller_manager`) and kwok as the kubelet of one
node (:func:`start_kwok`). All three start through :func:`_on_a_free_port`.

Imported as ``apiserver.harness``; other tiers call :func:`start_kube_apiserver`.

What this API server is, and is not:
* kube-apiserver v1.33 built from Go modules by ``build.py``, etcd embedded in the same
  process, listening on 127.0.0.1 only; static-token authentication, RBAC authorisation,
  the default admission chain plus MutatingAdmissionWebhook, ValidatingAdmissionWebhook
  and ValidatingAdmissionPolicy.
* :func:`start_kube_controller_manager` adds the real kube-controller-manager (garbage
  collector, namespace, workload and autoscaler controllers: :data:`CONTROLLERS`), each
  controller acting as its own ``kube-system`` service account, as in a kubeadm cluster.
* ``start_kube_apiserver(front_proxy=True)`` also serves aggregated APIs (APIServices):
  kube-apiserver proxies them with a front-proxy client certificate of its own
  (:func:`write_front_proxy`; an APIService may name a Service of type ExternalName
  ``localhost``, which the aggregator dials at the APIService's port).
* :func:`start_kwok` adds kwok v0.8.0 as the kubelet of node :data:`KWOK_NODE`: pods bound
  to it become Running, and ``kubectl exec``, ``attach``, ``logs`` and ``port-forward``
  through the API server reach local processes (:func:`kwok_configuration`): exec runs the
  command in ``Kwok.workdir`` with real output, TTY and exit code.
* Without them, and always for the rest: there is no scheduler; namespaces get no
  ``default`` ServiceAccount (use :meth:`KubeAPIServer.create_namespace`, or pods are
  rejected by the ServiceAccount admission plugin), deleted namespaces stay
  ``Terminating``, no garbage collection, pods are never scheduled (set
  ``spec.nodeName``). A pod whose node is :meth:`KubeAPIServer.create_node` never runs:
  ``kubectl exec`` on it passes authorisation and admission and then fails dialling the
  (absent) kubelet on 127.0.0.1: see :data:`NO_KUBELET_ERROR`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support import personas

from jitgate.audit.reconcile import ApiserverEvent, parse_apiserver_log
from jitgate.devtools.devcerts import DevCA, pem_key

KUBECTL = "/usr/bin/kubectl"
PLUGIN_DIR = Path(sys.executable).parent  # kubectl-jit is installed next to the tests' python
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 25.0
KWOK_NODE = "kwok-node-1"  # the Node start_kwok creates and kwok acts for

# What `kubectl exec`, `attach` and `port-forward` print once authentication,
# authorisation and admission passed and the API server dialled the node's kubelet
# (there is none; `{port}` is the node's kubelet port, see create_node). In full:
#   exec:   error: Internal error occurred: error sending request: Post
#           "https://127.0.0.1:{port}/exec/NS/POD/CONTAINER?command=true&error=1&output=1":
#           dial tcp 127.0.0.1:{port}: connect: connection refused
#   attach: error: Internal error occurred: error sending request: Post
#           "https://127.0.0.1:{port}/attach/NS/POD/CONTAINER?error=1&output=1": dial tcp ...
#   port-forward (pod must be Running, see set_pod_phase): error: error upgrading
#           connection: error dialing backend: dial tcp 127.0.0.1:{port}: connect: ...
NO_KUBELET_ERROR = "dial tcp 127.0.0.1:{port}: connect: connection refused"

ADMISSION_PLUGINS = (
    # Added to kube-apiserver's default set (which already has most of these).
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ResourceQuota",
)

SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:jitgate")


@dataclass(frozen=True)
class Persona:
    """A static-token user. ``name`` is the short key used by the helpers."""

    name: str
    username: str
    groups: tuple[str, ...]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    uid: str = field(default_factory=lambda: f"uid-{secrets.token_hex(6)}")


def default_personas() -> list[Persona]:
    return [
        *(Persona(person.name, person.name, person.groups) for person in personas.PEOPLE),
        Persona("admin", "admin", ("system:masters",)),
        Persona("jitgate-operator", personas.OPERATOR_USER, SA_GROUPS),
        Persona("jitgate-webhook", personas.WEBHOOK_USER, SA_GROUPS),
        # The bootstrap RBAC binds system:kube-controller-manager; with
        # --use-service-account-credentials it only mints tokens for each controller's
        # service account (system:serviceaccount:kube-system:<controller>).
        Persona("kube-controller-manager", "system:kube-controller-manager", ()),
        # kwok acts as its node's kubelet, in the kubelets' group (which jitgate exempts, as
        # it must a real kubelet finishing a pod's deletion); the bootstrap RBAC binds no
        # role to system:nodes (the Node authorizer does that in a cluster), so it is an
        # administrator too.
        Persona("kwok", f"system:node:{KWOK_NODE}", ("system:nodes", "system:masters")),
    ]


# --------------------------------------------------------------------------- certificates


# The tier's CA is the same throwaway CA the demo uses.
CertificateAuthority = DevCA


def write_service_account_keys(directory: Path) -> tuple[Path, Path]:
    """The service-account token signing key pair (ES256): (private, public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = directory / "sa.key"
    public = directory / "sa.pub"
    private.write_bytes(pem_key(key))
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def write_token_file(path: Path, personas: Sequence[Persona]) -> Path:
    # token,user,uid,"group1,group2" (no groups column for none: "" would be a group "")
    lines = [
        f"{p.token},{p.username},{p.uid}" + (f',"{",".join(p.groups)}"' if p.groups else "")
        for p in personas
    ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ the server


class KubeAPIServer:
    """A running kube-apiserver; see the module docstring for what it has and lacks."""

    def __init__(
        self,
        *,
        url: str,
        tmpdir: Path,
        ca: CertificateAuthority,
        personas: Sequence[Persona],
        process: subprocess.Popen[bytes],
        log_file: Path,
        startup_seconds: float,
        webhook_client_ca: Path | None = None,
        front_proxy: FrontProxy | None = None,
        traced: bool = False,
    ) -> None:
        self.url = url
        self.webhook_client_ca = webhook_client_ca
        self.front_proxy = front_proxy
        # Runs with a tracing configuration: each request's trace id reaches the webhooks.
        self.traced = traced
        self.tmpdir = tmpdir
        self.ca = ca
        self.ca_file = ca.cert_file
        self.personas = {p.name: p for p in personas}
        self.process = process
        self.log_file = log_file
        # The API server's own audit log (JSON lines of audit.k8s.io/v1 Events; AUDIT_POLICY).
        self.audit_log = tmpdir / AUDIT_LOG
        self.startup_seconds = startup_seconds
        self.kubectl_path = KUBECTL
        self.kubelet_ports: dict[str, int] = {}  # node name -> (closed) kubelet port
        self._kubeconfigs: dict[str, Path] = {}
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        for p in personas:
            self._kubeconfigs[p.name] = self._write_kubeconfig(p)

    # -- personas and kubeconfigs

    def persona(self, who: str) -> Persona:
        """Look a persona up by short name (``alice``) or username."""
        if who in self.personas:
            return self.personas[who]
        for p in self.personas.values():
            if p.username == who:
                return p
        raise KeyError(f"unknown persona {who!r}; known: {sorted(self.personas)}")

    def token(self, who: str) -> str:
        return self.persona(who).token

    def kubeconfig(self, who: str) -> Path:
        return self._kubeconfigs[self.persona(who).name]

    def _write_kubeconfig(self, p: Persona) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "jitgate-test",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": p.name, "user": {"token": p.token}}],
            "contexts": [
                {
                    "name": p.name,
                    "context": {"cluster": "jitgate-test", "user": p.name, "namespace": "default"},
                }
            ],
            "current-context": p.name,
        }
        path = self.tmpdir / "kubeconfigs" / f"{p.name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        path.chmod(0o600)
        return path

    # -- kubectl

    def kubectl_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECACHEDIR"] = str(self.tmpdir / "kubectl-cache")
        env["PATH"] = f"{PLUGIN_DIR}{os.pathsep}{env.get('PATH', '')}"  # finds `kubectl jit`
        return env

    def kubectl_argv(self, who: str, *args: str) -> list[str]:
        return [self.kubectl_path, f"--kubeconfig={self.kubeconfig(who)}", *args]

    def kubectl(
        self,
        who: str,
        *args: str,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl as persona ``who``; returns the CompletedProcess (text).

        With ``check=True`` a non-zero exit raises ``AssertionError`` showing stderr.
        """
        proc = subprocess.run(
            self.kubectl_argv(who, *args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.kubectl_env(),
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} as {who} exited {proc.returncode}:\n"
                f"{proc.stderr}{proc.stdout}"
            )
        return proc

    def jit(self, who: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `kubectl jit ARGS` as persona ``who``, the plugin found on PATH as users have it
        (kubectl passes no flag placed before a plugin's name, so --kubeconfig comes after)."""
        return subprocess.run(
            [self.kubectl_path, "jit", "--kubeconfig", str(self.kubeconfig(who)), *args],
            capture_output=True, text=True, timeout=timeout, check=False, env=self.kubectl_env(),
        )  # fmt: skip

    async def akubectl(
        self,
        who: str,
        *args: str,
        input: str | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """:meth:`kubectl` for async tests (does not block the event loop).

        Bound it with ``asyncio.timeout(...)``; on cancellation kubectl is killed.
        """
        proc = await asyncio.create_subprocess_exec(
            *self.kubectl_argv(who, *args),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.kubectl_env(),
        )
        try:
            out, err = await proc.communicate(input.encode() if input is not None else None)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        result = subprocess.CompletedProcess(
            self.kubectl_argv(who, *args), proc.returncode or 0, out.decode(), err.decode()
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} as {who} exited {result.returncode}:\n"
                f"{result.stderr}{result.stdout}"
            )
        return result

    def install_crds(self, directory: Path) -> None:
        """Every CRD file in ``directory``, applied server-side, and established."""
        self.kubectl("admin", "apply", "--server-side", "-f", str(directory), check=True)
        self.kubectl(
            "admin", "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all",
            check=True,
        )  # fmt: skip

    def apply(self, who: str, *manifests: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` of the given objects (server-side validation on)."""
        doc = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
        return self.kubectl(who, "apply", "-f", "-", input=json.dumps(doc), check=True)

    # -- raw HTTP

    def request(
        self,
        method: str,
        path: str,
        *,
        who: str | None = "admin",
        body: Any = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """One HTTPS call to the API server as ``who`` (None: anonymous).

        Returns (status, decoded JSON body or text).
        """
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if who is not None:
            req.add_header("Authorization", f"Bearer {self.token(who)}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    # -- objects the missing controllers would otherwise provide

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create a namespace and its ``default`` ServiceAccount (no controller-manager here)."""
        metadata: dict[str, Any] = {"name": name}
        if labels:
            metadata["labels"] = labels
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
        sa = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": name},
        }
        self.apply("admin", ns)
        self.apply("admin", sa)

    def create_node(self, name: str = "node-1", kubelet_port: int | None = None) -> int:
        """Create a Node whose kubelet would be at 127.0.0.1:PORT (nothing listens there).

        Returns the port; ``kubectl exec``/``attach``/``port-forward`` to pods with
        ``spec.nodeName`` = name then fail with :data:`NO_KUBELET_ERROR` after admission.
        """
        port = kubelet_port or free_port()
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            },
        }
        status, body = self.request("POST", "/api/v1/nodes", body=node)
        if status != 201:
            raise AssertionError(f"creating node {name}: {status} {body}")
        self.kubelet_ports[name] = port
        return port

    def set_pod_phase(self, namespace: str, name: str, phase: str = "Running") -> None:
        """Write ``status.phase`` (no kubelet does it here). ``kubectl port-forward``
        refuses, client-side, pods that are not ``Running``."""
        self.kubectl(
            "admin", "patch", "pod", name, "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": {"phase": phase}}), check=True,
        )  # fmt: skip

    def no_kubelet_error(self, node: str = "node-1") -> str:
        """The text kubectl exec/attach/port-forward prints once admission passed."""
        return NO_KUBELET_ERROR.format(port=self.kubelet_ports[node])

    def audit_events(self, start: int = 0, end: int | None = None) -> list[ApiserverEvent]:
        """The requests in the API server's own audit log (each once, its stages merged),
        between byte offsets `start` and `end` of the file (its size now: `audit_log_size`)."""
        with self.audit_log.open("rb") as log:
            log.seek(start)
            text = log.read() if end is None else log.read(end - start)
        return parse_apiserver_log(text.splitlines())

    def audit_log_size(self) -> int:
        return self.audit_log.stat().st_size

    # -- life cycle

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> float:
        """SIGTERM the process group, SIGKILL it after ``timeout``; returns seconds taken."""
        return _stop_process_group(self.process, timeout)


def _stop_process_group(process: subprocess.Popen[bytes], timeout: float) -> float:
    start = time.monotonic()
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return time.monotonic() - start


# ------------------------------------------------------- processes that listen on a free port


class _Exited(Exception):
    pass


class _Served(Protocol):
    """A started process of the tier (the API server, the controller-manager, kwok)."""

    def log_tail(self, lines: int = 60) -> str: ...

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> float: ...


_S = TypeVar("_S", bound=_Served)


def _spawn(
    name: str, argv: Sequence[str], tmpdir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group (teardown kills it whole), cwd ``tmpdir``,
    output appended to ``tmpdir/NAME.log``; the command line is kept in ``NAME.cmdline``."""
    (tmpdir / f"{name}.cmdline").write_text(" \\\n  ".join(argv) + "\n")
    with open(tmpdir / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=tmpdir,
            env=env,
        )


@contextlib.contextmanager
def _on_a_free_port(
    launch: Callable[[int, int], _S], wait_ready: Callable[[_S], None]
) -> Iterator[_S]:
    """Start a process on a free port, yield it once ready, stop it on exit.

    ``launch(port, attempt)`` starts it; ``wait_ready`` returns once it serves and raises
    :class:`_Exited` when it ended meanwhile. The free port may be taken between picking and
    binding: a process that ended saying its address is in use is launched again on another
    port (three attempts). Any other failure stops it and propagates.
    """
    last_error = ""
    for attempt in range(3):
        served = launch(free_port(), attempt)
        try:
            wait_ready(served)
        except _Exited as exc:
            last_error = str(exc)
            if "address already in use" in served.log_tail(200):
                continue
            raise RuntimeError(last_error) from None
        except BaseException:
            served.stop()
            raise
        try:
            yield served
        finally:
            served.stop()
        return
    raise RuntimeError(last_error)


AUDIT_LOG = "audit.log"
# What the API server's audit log keeps: every request at Metadata level (annotations
# included, so jitgate's auditAnnotations are there), but no reads but pod connections
# (kubectl exec over WebSocket is a GET on pods/exec).
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "Metadata",
            "resources": [
                {"group": "", "resources": ["pods/exec", "pods/attach", "pods/portforward"]}
            ],
        },
        {"level": "None", "verbs": ["get", "list", "watch"]},
        {"level": "Metadata"},
    ],
}


def apiserver_args(
    *,
    tmpdir: Path,
    etcd_dir: Path,
    port: int,
    serving: tuple[Path, Path],
    ca_file: Path,
    sa_keys: tuple[Path, Path],
    token_file: Path,
    extra: Sequence[str] = (),
) -> list[str]:
    sa_private, sa_public = sa_keys
    policy = tmpdir / "audit-policy.json"
    policy.write_text(json.dumps(AUDIT_POLICY))
    return [
        f"--etcd-data-dir={etcd_dir}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={tmpdir / 'certs'}",
        f"--tls-cert-file={serving[0]}",
        f"--tls-private-key-file={serving[1]}",
        f"--client-ca-file={ca_file}",
        f"--token-auth-file={token_file}",
        "--authorization-mode=RBAC",
        f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={sa_public}",
        f"--service-account-signing-key-file={sa_private}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        # How it reaches a node's kubelet API (kwok's, start_kwok): at the node's InternalIP
        # (kwok's node has no resolvable host name), its serving certificate from the tier's CA.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-certificate-authority={ca_file}",
        "--profiling=false",
        "--logging-format=text",
        "--v=1",
        f"--audit-policy-file={policy}",
        f"--audit-log-path={tmpdir / AUDIT_LOG}",
        "--audit-log-format=json",
        *extra,
    ]


@dataclass(frozen=True)
class FrontProxy:
    """The aggregation layer's front proxy: the CA an aggregated API server (jitgate's session
    gateway) checks the API server's proxy client certificate against, and that
    certificate's common name (``--requestheader-allowed-names``)."""

    client_ca: Path
    client_name: str
    client_cert: Path
    client_key: Path


FRONT_PROXY_CLIENT = "front-proxy-client"


def write_tracing_config(path: Path) -> Path:
    """A TracingConfiguration that samples nothing: the API server then starts a trace of its
    own for each request (continuing a client's only for system:masters and
    system:monitoring) and sends its trace id to every webhook it calls, while exporting no
    span. The collector's address is spelled out, so nothing is sent past 127.0.0.1 even for
    a client's sampled trace."""
    path.write_text(
        "apiVersion: apiserver.config.k8s.io/v1beta1\n"
        "kind: TracingConfiguration\n"
        "endpoint: 127.0.0.1:4317\n"
        "samplingRatePerMillion: 0\n"
    )
    return path


def write_front_proxy(directory: Path) -> tuple[FrontProxy, list[str]]:
    """A front-proxy CA and the API server's proxy client certificate, and the flags that make
    kube-apiserver proxy aggregated APIs with them (as kubeadm sets them)."""
    proxy_ca = DevCA(directory, "front-proxy CA")
    cert, key = proxy_ca.issue(FRONT_PROXY_CLIENT, server=False, client=True, dns=(), ips=())
    flags = [
        f"--requestheader-client-ca-file={proxy_ca.cert_file}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={cert}",
        f"--proxy-client-key-file={key}",
    ]
    return FrontProxy(proxy_ca.cert_file, FRONT_PROXY_CLIENT, cert, key), flags


def write_webhook_client_auth(directory: Path) -> tuple[Path, Path]:
    """The API server's client certificate for admission webhooks, from a CA of its own, and
    the AdmissionConfiguration that makes it present it: (configuration file, client CA).

    This is what an administrator writes on a control plane (charts/jitgate/README.md); the
    user name ``*`` applies it to every webhook host (a real one would name
    ``<service>.<namespace>.svc``).
    """
    clients = DevCA(directory, "kube-apiserver webhook client CA")
    cert, key = clients.issue("kube-apiserver-webhook-client", server=False, client=True,
                              dns=(), ips=())  # fmt: skip
    kubeconfig = directory / "webhook-client.kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "users": [{"name": "*", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
    }, indent=2))  # fmt: skip
    plugin = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "WebhookAdmissionConfiguration",
        "kubeConfigFile": str(kubeconfig),
    }
    configuration = directory / "admission-configuration.yaml"
    configuration.write_text(json.dumps({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {"name": name, "configuration": plugin}
            for name in ("ValidatingAdmissionWebhook", "MutatingAdmissionWebhook")
        ],
    }, indent=2))  # fmt: skip
    return configuration, clients.cert_file


@contextlib.contextmanager
def start_kube_apiserver(
    binary: Path,
    tmpdir: Path,
    *,
    personas: Sequence[Persona] | None = None,
    extra_args: Sequence[str] = (),
    webhook_client_auth: bool = False,
    front_proxy: bool = False,
    tracing: bool = False,
    timeout: float = STARTUP_TIMEOUT_S,
) -> Iterator[KubeAPIServer]:
    """Start kube-apiserver on 127.0.0.1 (free port); yield it ready; stop it on exit.

    ``webhook_client_auth``: present a client certificate to admission webhooks (module
    docstring). ``front_proxy``: serve aggregated APIs (APIServices) through a front proxy
    with a client certificate of its own (:func:`write_front_proxy`). ``tracing``: run with a
    tracing configuration (:func:`write_tracing_config`), so that each request's trace id
    reaches the webhooks it calls (jitgate's --apiserver-traces).

    Ready means: ``/readyz`` answers ``ok``, and the ``default`` namespace and the RBAC
    bootstrap (``cluster-admin``, ``system:basic-user`` binding) exist.
    """
    start = time.monotonic()
    tmpdir.mkdir(parents=True, exist_ok=True)
    certs = tmpdir / "pki"
    certs.mkdir(exist_ok=True)
    ca = CertificateAuthority(certs)
    serving = ca.issue(
        "kube-apiserver",
        dns=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ips=("127.0.0.1", "10.96.0.1"),
    )
    sa_keys = write_service_account_keys(certs)
    people = list(personas) if personas is not None else default_personas()
    token_file = write_token_file(tmpdir / "tokens.csv", people)
    client_ca = None
    if webhook_client_auth:
        admission, client_ca = write_webhook_client_auth(certs / "webhook-clients")
        extra_args = [*extra_args, f"--admission-control-config-file={admission}"]
    proxy = None
    if front_proxy:
        proxy, flags = write_front_proxy(certs / "front-proxy")
        extra_args = [*extra_args, *flags]
    if tracing:
        config = write_tracing_config(tmpdir / "tracing.yaml")
        extra_args = [*extra_args, f"--tracing-config-file={config}"]

    def launch(port: int, attempt: int) -> KubeAPIServer:
        argv = [
            str(Path(binary).resolve()),
            *apiserver_args(
                tmpdir=tmpdir,
                etcd_dir=tmpdir / f"etcd-{attempt}",
                port=port,
                serving=serving,
                ca_file=ca.cert_file,
                sa_keys=sa_keys,
                token_file=token_file,
                extra=extra_args,
            ),
        ]
        return KubeAPIServer(
            url=f"https://127.0.0.1:{port}",
            tmpdir=tmpdir,
            ca=ca,
            personas=people,
            process=_spawn("kube-apiserver", argv, tmpdir),
            log_file=tmpdir / "kube-apiserver.log",
            startup_seconds=0.0,
            webhook_client_ca=client_ca,
            front_proxy=proxy,
            traced=tracing,
        )

    with _on_a_free_port(launch, lambda server: _wait_ready(server, start + timeout)) as server:
        server.startup_seconds = time.monotonic() - start
        yield server


def _wait_ready(server: KubeAPIServer, deadline: float) -> None:
    Check = tuple[str, str, str | None, Callable[[int, Any], bool]]
    checks: list[Check] = [
        ("GET", "/readyz", None, lambda s, b: s == 200 and b == "ok"),
        ("GET", "/api/v1/namespaces/default", "admin", lambda s, b: s == 200),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin",
            "admin",
            lambda s, b: s == 200,
        ),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:basic-user",
            "admin",
            lambda s, b: s == 200,
        ),
    ]
    last = "not started"
    for method, path, who, ok in checks:
        while True:
            if server.process.poll() is not None:
                raise _Exited(
                    f"kube-apiserver exited with {server.process.returncode} during start-up; "
                    f"log {server.log_file}:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"kube-apiserver not ready ({method} {path}: {last}); "
                    f"log {server.log_file}:\n{server.log_tail()}"
                )
            try:
                status, body = server.request(method, path, who=who, timeout=5)
                if ok(status, body):
                    break
                last = f"{status} {str(body)[:300]}"
            except (OSError, urllib.error.URLError) as exc:
                last = repr(exc)
            time.sleep(0.2)


# ------------------------------------------------------------------ the controller-manager

# The controllers the tier runs, each with the kube-system service account it acts as (the
# bootstrap RBAC gives each its own role, as in a kubeadm cluster). Garbage collection and
# the namespace, workload and autoscaler controllers are how an exempt controller can reach
# a protected outcome for a user; the Job and CronJob controllers are there for Job tests.
CONTROLLERS: dict[str, str] = {
    "garbage-collector-controller": "generic-garbage-collector",
    "namespace-controller": "namespace-controller",
    "deployment-controller": "deployment-controller",
    "replicaset-controller": "replicaset-controller",
    "statefulset-controller": "statefulset-controller",
    "horizontal-pod-autoscaler-controller": "horizontal-pod-autoscaler",
    "replicationcontroller-controller": "replication-controller",
    "job-controller": "job-controller",
    "ttl-after-finished-controller": "ttl-after-finished-controller",
    "cronjob-controller": "cronjob-controller",
}
# The HPA controller's resync (default 15 s); it also acts at once on each HPA change.
HPA_SYNC_PERIOD = "2s"


@dataclass
class KubeControllerManager:
    """A running kube-controller-manager (see :func:`start_kube_controller_manager`)."""

    url: str
    controllers: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log_file: Path
    startup_seconds: float = 0.0

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> float:
        return _stop_process_group(self.process, timeout)


def controller_manager_args(
    server: KubeAPIServer,
    *,
    port: int,
    serving: tuple[Path, Path],
    controllers: Sequence[str],
    extra: Sequence[str] = (),
) -> list[str]:
    kubeconfig = server.kubeconfig("kube-controller-manager")
    return [
        f"--kubeconfig={kubeconfig}",
        # Its own serving port (for /healthz) authenticates and authorises through the API
        # server, as in a cluster.
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # No front proxy here: do not look for its CA in kube-system (it logs every second).
        "--authentication-skip-lookup=true",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={serving[0]}",
        f"--tls-private-key-file={serving[1]}",
        "--use-service-account-credentials=true",
        f"--controllers={','.join(controllers)}",
        "--leader-elect=false",  # one instance: no need to wait for a lease
        f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_PERIOD}",
        "--kube-api-qps=100",
        "--kube-api-burst=200",
        "--logging-format=text",
        "--v=1",
        *extra,
    ]


@contextlib.contextmanager
def start_kube_controller_manager(
    binary: Path,
    server: KubeAPIServer,
    tmpdir: Path,
    *,
    controllers: Sequence[str] = tuple(CONTROLLERS),
    extra_args: Sequence[str] = (),
    timeout: float = STARTUP_TIMEOUT_S,
) -> Iterator[KubeControllerManager]:
    """Start kube-controller-manager against ``server``; yield it ready; stop it on exit.

    Ready means: ``/healthz`` answers ``ok`` and every controller has its service account
    (a controller gets its credentials, creating the account, as it starts). Controllers
    then still sync their informers: tests wait for what a controller does, never a time.
    """
    start = time.monotonic()
    tmpdir.mkdir(parents=True, exist_ok=True)
    serving = server.ca.issue("kube-controller-manager", dns=("localhost",), ips=("127.0.0.1",))

    def launch(port: int, _attempt: int) -> KubeControllerManager:
        argv = [
            str(Path(binary).resolve()),
            *controller_manager_args(
                server, port=port, serving=serving, controllers=controllers, extra=extra_args
            ),
        ]
        return KubeControllerManager(
            url=f"https://127.0.0.1:{port}",
            controllers=tuple(controllers),
            process=_spawn("kube-controller-manager", argv, tmpdir),
            log_file=tmpdir / "kube-controller-manager.log",
        )

    def ready(manager: KubeControllerManager) -> None:
        _wait_controllers_ready(manager, server, deadline=start + timeout)

    with _on_a_free_port(launch, ready) as manager:
        manager.startup_seconds = time.monotonic() - start
        yield manager


def _wait_controllers_ready(
    manager: KubeControllerManager, server: KubeAPIServer, deadline: float
) -> None:
    accounts = "/api/v1/namespaces/kube-system/serviceaccounts/"
    pending = [CONTROLLERS[name] for name in manager.controllers if name in CONTROLLERS]

    def service_accounts_made(body: str) -> str | None:
        nonlocal pending
        pending = [sa for sa in pending if server.request("GET", accounts + sa)[0] != 200]
        return None if body == "ok" and not pending else f"no service account yet for {pending}"

    _wait_healthy("kube-controller-manager", manager, manager.url, server, deadline,
                  also=service_accounts_made)  # fmt: skip


def _wait_healthy(
    name: str,
    started: Any,
    url: str,
    server: KubeAPIServer,
    deadline: float,
    also: Callable[[str], str | None] = lambda body: None,
) -> None:
    """Until ``url``/healthz answers 200 over the tier's CA and ``also`` (given the body)
    says nothing is missing; a process that exits or a passed deadline says why, with its log.
    ``started`` has ``process``, ``log_file`` and ``log_tail()``."""
    healthz = urllib.request.Request(url + "/healthz")
    context = ssl.create_default_context(cafile=str(server.ca_file))
    last = "not started"
    while True:
        if started.process.poll() is not None:
            raise _Exited(
                f"{name} exited with {started.process.returncode} during start-up; "
                f"log {started.log_file}:\n{started.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{name} not ready ({last}); log {started.log_file}:\n{started.log_tail()}"
            )
        try:
            with urllib.request.urlopen(healthz, context=context, timeout=5) as resp:
                body = resp.read().decode(errors="replace")
            missing = also(body)
            if missing is None:
                return
            last = f"/healthz {body[:200]!r}; {missing}"
        except (OSError, urllib.error.URLError) as exc:
            last = repr(exc)
        time.sleep(0.2)


# ------------------------------------------------------------------------------------- kwok

KWOK_API = "kwok.x-k8s.io/v1alpha1"

# kwok's stages (how it moves a Node and its pods along), written for this tier instead of
# kwok's defaults (kwokctl's, which the kwok binary does not load):
# - the node becomes Ready once, at 127.0.0.1 and kwok's port. No heartbeat stage and no
#   lease (--node-lease-duration-seconds=0): the tier runs no node-lifecycle controller, so
#   nothing would mark a silent node NotReady, and two busy cores are spared the writes;
# - a pod bound to the node becomes Running with its containers started; none ever completes;
# - a deleted pod is removed at once, as a kubelet does once its containers stopped.
_NODE_READY = """\
{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
addresses:
- address: {{ NodeIP | Quote }}
  type: InternalIP
daemonEndpoints:
  kubeletEndpoint:
    Port: {{ NodePort }}
allocatable: {cpu: 1k, memory: 1Ti, pods: 1M}
capacity: {cpu: 1k, memory: 1Ti, pods: 1M}
nodeInfo:
  architecture: amd64
  bootID: ""
  containerRuntimeVersion: {{ printf "kwok-%s" Version | Quote }}
  kernelVersion: {{ printf "kwok-%s" Version | Quote }}
  kubeProxyVersion: {{ printf "kwok-%s" Version | Quote }}
  kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
  machineID: ""
  operatingSystem: linux
  osImage: ""
  systemUUID: ""
phase: Running
"""
_POD_RUNNING = """\
{{ $now := Now }}
conditions:
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: Initialized}
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: Ready}
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: ContainersReady}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""


def _stage(name: str, kind: str, expressions: list[dict[str, Any]], **next_: Any) -> dict[str, Any]:
    return {
        "apiVersion": KWOK_API,
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": kind},
            "selector": {"matchExpressions": expressions},
            "next": next_,
        },
    }


def kwok_configuration(workdir: Path, attach_log: Path) -> list[dict[str, Any]]:
    """kwok's stages and its kubelet API's behaviour, the same for every pod of the node:
    exec runs the command as a local process in ``workdir``; attach and logs stream
    ``attach_log`` (CRI container log format: :meth:`Kwok.container_prints`; attach from its
    end on); port-forward connects any port to ``cat``, an echo."""
    not_ready = {
        "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
        "operator": "NotIn",
        "values": ["True"],
    }
    everywhere: list[tuple[str, str, dict[str, Any]]] = [
        ("ClusterExec", "execs", {"local": {"workDir": str(workdir)}}),
        ("ClusterAttach", "attaches", {"logsFile": str(attach_log)}),
        ("ClusterLogs", "logs", {"logsFile": str(attach_log), "follow": True}),
        ("ClusterPortForward", "forwards", {"command": ["cat"]}),
    ]
    return [
        _stage("node-ready", "Node", [not_ready], statusTemplate=_NODE_READY),
        _stage(
            "pod-running",
            "Pod",
            [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                not_ready,
            ],
            statusTemplate=_POD_RUNNING,
        ),
        _stage(
            "pod-delete",
            "Pod",
            [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
            delete=True,
        ),
        *(
            {
                "apiVersion": KWOK_API,
                "kind": kind,
                "metadata": {"name": "local-processes"},
                "spec": {field: [target]},
            }
            for kind, field, target in everywhere
        ),
    ]


@dataclass
class Kwok:
    """kwok managing one Node of the API server and serving its kubelet API (see
    :func:`start_kwok`)."""

    url: str  # its kubelet API (HTTPS, no client authentication)
    node: str
    port: int
    workdir: Path  # where exec'd commands run: the node's "container filesystem"
    attach_log: Path  # what `kubectl attach` and `kubectl logs` stream
    process: subprocess.Popen[bytes]
    log_file: Path
    startup_seconds: float = 0.0

    def container_prints(self, line: str) -> None:
        """Add ``line`` to what every pod of the node prints (``attach_log``, in the CRI
        container log format kwok reads): ``kubectl attach`` and ``logs`` show it."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self.attach_log.open("a") as log:
            log.write(f"{stamp} stdout F {line}\n")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> float:
        return _stop_process_group(self.process, timeout)


@contextlib.contextmanager
def start_kwok(
    binary: Path,
    server: KubeAPIServer,
    tmpdir: Path,
    *,
    node: str = KWOK_NODE,
    timeout: float = STARTUP_TIMEOUT_S,
) -> Iterator[Kwok]:
    """Create Node ``node`` on ``server`` and start kwok as its kubelet; yield kwok once the
    node is Ready; stop kwok on exit (the Node stays, still Ready: nothing watches it).

    kwok serves the node's kubelet API on 127.0.0.1 over TLS (a certificate from the tier's
    CA, which the API server checks: ``--kubelet-certificate-authority``); a pod with
    ``spec.nodeName: node`` becomes Running, and ``kubectl exec``, ``attach``, ``logs`` and
    ``port-forward`` reach real local processes (:func:`kwok_configuration`). kwok acts as
    the ``kwok`` persona (``system:node:kwok-node-1``, group ``system:nodes``).
    """
    start = time.monotonic()
    tmpdir.mkdir(parents=True, exist_ok=True)
    workdir, attach_log = tmpdir / "node-files", tmpdir / "attach.log"
    workdir.mkdir(exist_ok=True)
    attach_log.touch()
    configuration = tmpdir / "kwok.yaml"
    configuration.write_text(
        "---\n".join(
            json.dumps(doc, indent=1) + "\n" for doc in kwok_configuration(workdir, attach_log)
        )
    )
    serving = server.ca.issue("kwok-kubelet", dns=("localhost",), ips=("127.0.0.1",))
    # Its own work directory: kwok also reads ~/.kwok/kwok.yaml when there is one.
    env = {**os.environ, "KWOK_WORKDIR": str(tmpdir / "kwok-home")}

    def launch(port: int, _attempt: int) -> Kwok:
        argv = [
            str(Path(binary).resolve()),
            f"--kubeconfig={server.kubeconfig('kwok')}",
            f"--config={configuration}",
            f"--manage-single-node={node}",
            "--node-ip=127.0.0.1",
            f"--node-port={port}",
            f"--server-address=127.0.0.1:{port}",
            f"--tls-cert-file={serving[0]}",
            f"--tls-private-key-file={serving[1]}",
            "--node-lease-duration-seconds=0",
        ]
        return Kwok(
            url=f"https://127.0.0.1:{port}",
            node=node,
            port=port,
            workdir=workdir,
            attach_log=attach_log,
            process=_spawn("kwok", argv, tmpdir, env),
            log_file=tmpdir / "kwok.log",
        )

    def ready(kwok: Kwok) -> None:
        _wait_kwok_serving(kwok, server, deadline=start + timeout)

    with _on_a_free_port(launch, ready) as kwok:
        server.create_node(node, kubelet_port=kwok.port)
        _wait_node_ready(kwok, server, deadline=start + timeout)
        kwok.startup_seconds = time.monotonic() - start
        yield kwok


def _wait_kwok_serving(kwok: Kwok, server: KubeAPIServer, deadline: float) -> None:
    _wait_healthy("kwok", kwok, kwok.url, server, deadline)


def _wait_node_ready(kwok: Kwok, server: KubeAPIServer, deadline: float) -> None:
    """Until kwok marked the node Ready: ``kubectl wait`` (a watch)."""
    seconds = max(1, int(deadline - time.monotonic()))
    waited = server.kubectl(
        "admin", "wait", "--for=condition=Ready", f"node/{kwok.node}", f"--timeout={seconds}s",
        timeout=seconds + 15,
    )  # fmt: skip
    if waited.returncode != 0:
        raise TimeoutError(
            f"kwok did not make node {kwok.node} Ready: {waited.stderr.strip()}; "
            f"log {kwok.log_file}:\n{kwok.log_tail()}"
        )
