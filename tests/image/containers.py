"""podman on this machine: whether it can run, the image `make image` builds, and jitgate's
webhook and operator run from that image exactly as the chart's StatefulSets say, in front of
a real kube-apiserver.

:func:`build_image` runs container/build-image.sh (which rebuilds only when the files it reads
changed); :func:`install` puts the chart's objects on the API server and yields an
``e2e.cluster.JitCluster`` whose webhook and operator are ``podman run`` processes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from apiserver.harness import KubeAPIServer
from chart import render
from e2e import manifests, processes
from e2e.cluster import CRDS_DIR, PROBE_POD, SERVER_SIDE_APPLY, JitCluster, as_list, wait_effective
from e2e.processes import LocalProcess
from image import pod

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "container" / "build-image.sh"
PODMAN = ("podman", "--storage-driver", "vfs", "--runtime", "runc")
TOOLS = ("podman", "buildah", "runc")
# vfs copies the whole image for each container: starting one takes seconds to a minute.
READY_TIMEOUT_S = 180.0
COMPONENTS = ("webhook", "operator")
WEBHOOK_CONFIGURATIONS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")


class Unavailable(Exception):
    """podman and buildah cannot build or run the image here; the message says why."""


class BuildFailed(Exception):
    """The image did not build, for a reason that is not this machine's."""


@dataclass(frozen=True)
class Build:
    output: str
    seconds: float


def check_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise Unavailable(
            f"{', '.join(missing)} not installed (apt-get install podman buildah runc mmdebstrap)"
        )


def build_image() -> Build:
    """`make image`'s script. Exit status 2 is its "cannot build here" (no engine, no base)."""
    check_tools()
    start = time.monotonic()
    result = subprocess.run(
        [str(BUILD_SCRIPT)], cwd=REPO, capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode == 2:
        raise Unavailable(output.strip().splitlines()[-1] if output.strip() else "exit 2")
    if result.returncode != 0:
        raise BuildFailed(f"container/build-image.sh exited {result.returncode}:\n{output}")
    return Build(output, time.monotonic() - start)


def podman(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def image_distributions(image: str) -> dict[str, str]:
    """name -> version of every Python distribution in the image's /opt/jitgate."""
    script = (
        "import json; from importlib.metadata import distributions as d; "
        "print(json.dumps({x.metadata['Name'].lower(): x.version for x in d()}))"
    )
    result = podman(
        "run", "--rm", "--network", "none", "--read-only", "--user", "65532:65532",
        *pod.ULIMITS, "--entrypoint", "/opt/jitgate/bin/python", image, "-I", "-c", script,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found: dict[str, str] = json.loads(result.stdout)
    return found


def _secret_reader(api: KubeAPIServer) -> Callable[[str, str], Mapping[str, bytes]]:
    """Reads a Secret from the API server, as the kubelet does for volumes and env."""

    def read(namespace: str, name: str) -> Mapping[str, bytes]:
        proc = api.kubectl("admin", "get", "secret", name, "-n", namespace, "-o", "json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout).get("data") or {}
        return {key: base64.b64decode(value) for key, value in data.items()}

    return read


def _config_map_reader(api: KubeAPIServer) -> Callable[[str, str], Mapping[str, bytes]]:
    """Reads a ConfigMap from the API server, as the kubelet does for volumes."""

    def read(namespace: str, name: str) -> Mapping[str, bytes]:
        proc = api.kubectl("admin", "get", "configmap", name, "-n", namespace, "-o", "json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout).get("data") or {}
        return {key: str(value).encode() for key, value in data.items()}

    return read


def _answers(url: str, ca_file: Path) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        answer = (
            processes.https_get(url, ca_file)
            if url.startswith("https:")
            else processes.http_get(url)
        )
        return answer.status == 200, f"{answer.status} {answer.body.strip()[:200]}"

    return check


@contextlib.contextmanager
def install(
    api: KubeAPIServer,
    tmpdir: Path,
    *,
    echo: Callable[[str], object],
    on_process: Callable[[LocalProcess], None] = lambda _process: None,
) -> Iterator[JitCluster]:
    """The chart's objects on ``api``, its webhook and operator run from the image; the
    webhook configurations point at the webhook container's port on 127.0.0.1."""
    start = time.monotonic()
    namespace = manifests.RELEASE_NAMESPACE
    # The session gateway, served by the webhook container on its own port, believing this
    # API server's front proxy. Its APIService is not applied: the aggregator could not reach
    # the chart's Service (no kube-proxy), and kubectl's discovery would warn of it.
    assert api.front_proxy is not None, "the image tier's API server needs a front proxy"
    gateway = {
        **manifests.CHART_VALUES["gateway"],
        "requestHeader": {
            "clientCA": api.front_proxy.client_ca.read_text(),
            "allowedNames": [api.front_proxy.client_name],
        },
    }
    values = {**manifests.CHART_VALUES, "gateway": gateway}
    rendered = render.render_chart(values, namespace=namespace)
    crds = [o for o in rendered if o["kind"] == "CustomResourceDefinition"]
    api.kubectl("admin", "apply", "--server-side", "-f", str(CRDS_DIR), check=True)
    api.kubectl("admin", *SERVER_SIDE_APPLY, input=as_list(crds), check=True)
    api.kubectl(
        "admin", "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all", check=True
    )
    api.create_node(manifests.NODE)

    # The serving certificate is the API server CA's, for the address the API server dials;
    # the Secret keeps the chart's shape (the chart's own one names only the Service).
    cert, key = api.ca.issue(
        "jitgate-webhook", dns=[f"{render.WEBHOOK_NAME}.{namespace}.svc"], ips=["127.0.0.1"]
    )
    tls = render.find(rendered, "Secret", render.TLS_SECRET_NAME)
    tls["data"] = {
        name: base64.b64encode(path.read_bytes()).decode()
        for name, path in (("tls.crt", cert), ("tls.key", key), ("ca.crt", api.ca_file))
    }
    # Applied as they are, but for the webhook configurations (pointed at 127.0.0.1 below).
    chart_objects = [
        tls if (o["kind"], o["metadata"]["name"]) == ("Secret", render.TLS_SECRET_NAME) else o
        for o in rendered
        if o["kind"] not in ("CustomResourceDefinition", "APIService", *WEBHOOK_CONFIGURATIONS)
    ]
    objects = [
        *manifests.namespaces(),
        *chart_objects,
        *manifests.persona_rbac(),
        manifests.pod("prod", PROBE_POD),
    ]
    api.kubectl("admin", *SERVER_SIDE_APPLY, input=as_list(objects), check=True)
    echo(f"chart objects applied in {time.monotonic() - start:.2f} s")

    api_address = urlsplit(api.url)
    run_id = secrets.token_hex(4)
    launched: list[tuple[LocalProcess, str]] = []
    statefulsets = {
        name: render.find(rendered, "StatefulSet", f"jitgate-{name}") for name in COMPONENTS
    }
    try:
        for name, statefulset in statefulsets.items():
            template = statefulset["spec"]["template"]["spec"]
            account = f"system:serviceaccount:{namespace}:{template['serviceAccountName']}"
            container_name = f"jitgate-image-tier-{run_id}-{name}"
            args = pod.podman_run_args(
                statefulset,
                host_dir=tmpdir / name,
                read_secret=_secret_reader(api),
                read_config_map=_config_map_reader(api),
                service_account=pod.ServiceAccount(
                    token=api.persona(account).token,
                    ca_pem=api.ca.pem,
                    api_host=str(api_address.hostname),
                    api_port=int(api_address.port or 443),
                ),
                container_name=container_name,
            )
            process = LocalProcess(name, [*PODMAN, "run", *args], tmpdir / f"{name}.log")
            process.start()
            launched.append((process, container_name))
            on_process(process)
        (webhook, _), (operator, _) = launched
        containers = {
            name: statefulsets[name]["spec"]["template"]["spec"]["containers"][0]
            for name in COMPONENTS
        }
        for name, process in (("webhook", webhook), ("operator", operator)):
            url = pod.probe_url(containers[name], "readinessProbe")
            processes.wait_until(
                f"the {name} container's readiness probe ({url})",
                _answers(url, api.ca_file),
                timeout=READY_TIMEOUT_S,
                interval=0.5,
                alive=[process],
            )
        webhook_url = "https://127.0.0.1:" + str(containers["webhook"]["ports"][0]["containerPort"])
        cluster = JitCluster(
            api=api,
            tmpdir=tmpdir,
            webhook=webhook,
            operator=operator,
            webhook_url=webhook_url,
            webhook_audit=tmpdir / "webhook" / "claims" / "audit",
            operator_audit=tmpdir / "operator" / "claims" / "audit",
            audit_key=tmpdir / "webhook" / "secrets" / "audit-key" / "hmac.key",
            gateway_port=next(
                port["containerPort"]
                for port in containers["webhook"]["ports"]
                if port["name"] == "sessions"
            ),
        )
        api.apply(
            "admin",
            *render.webhook_configurations_for_url(
                webhook_url, api.ca.pem, manifests.CHART_VALUES, namespace=namespace
            ),
        )
        wait_effective(cluster)
        cluster.setup_seconds = time.monotonic() - start
        echo(f"webhook and operator containers ready in {cluster.setup_seconds:.2f} s")
        yield cluster
    finally:
        for process, container_name in reversed(launched):
            code = process.stop(timeout=40.0)
            podman("rm", "--force", "--ignore", container_name)
            if code not in (None, 0):
                echo(f"{process.name} exited with {code} (log {process.log_file})")
