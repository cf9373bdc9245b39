"""The image as the chart runs it: the server extras only, user 65532, a read-only root
filesystem, the chart's arguments, environment and mounted files; against a real
kube-apiserver the webhook container decides exec and the operator container issues grants."""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

import pytest
from e2e.cluster import JitCluster, denied_by, gateway_refusal
from image import containers

pytestmark = [pytest.mark.image, pytest.mark.apiserver, pytest.mark.kubectl]

DENIED = denied_by("connect")
DEVELOPMENT_ONLY = (
    "kmock", "pytest", "pytest-asyncio", "hypothesis", "mypy", "ruff", "import-linter",
    "helm-python-sdk", "kubernetes-validate", "jsonschema", "httpx", "pip",
)  # fmt: skip
SERVER = ("jitgate", "kopf", "aiohttp", "fastapi", "uvicorn", "kubernetes", "pydantic", "psycopg")


def container_config(process: Any) -> dict[str, Any]:
    name = process.argv[process.argv.index("--name") + 1]
    inspected = containers.podman("inspect", name)
    assert inspected.returncode == 0, inspected.stderr
    (config,) = json.loads(inspected.stdout)
    found: dict[str, Any] = config
    return found


def test_the_image_holds_the_server_extras_and_no_development_tool(jitgate_image: str) -> None:
    installed = containers.image_distributions(jitgate_image)
    assert [name for name in DEVELOPMENT_ONLY if name in installed] == []
    for name in SERVER:
        assert installed.get(name) == version(name), f"{name} in the image is not the locked one"


def test_the_containers_run_as_the_chart_says(image_cluster: JitCluster) -> None:
    for process in (image_cluster.webhook, image_cluster.operator):
        config = container_config(process)
        assert config["State"]["Running"], process.tail(50)
        assert config["Config"]["User"] == "65532:65532"
        assert config["HostConfig"]["ReadonlyRootfs"] is True
        assert config["Config"]["Hostname"] == f"jitgate-{process.name}-0"
        assert {"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}.isdisjoint(config["EffectiveCaps"] or []), (
            config["EffectiveCaps"]
        )


def test_the_webhook_container_denies_an_exec_without_a_grant(image_cluster: JitCluster) -> None:
    c = image_cluster
    c.create_pods("prod", "db-0")

    denied = c.exec("alice", "prod", "db-0", "ls")

    assert denied.returncode == 1
    assert denied.stderr.startswith(DENIED), denied.stderr
    assert "alice holds no live grant for it" in denied.stderr


def test_the_operator_container_turns_an_approval_into_a_grant(image_cluster: JitCluster) -> None:
    c = image_cluster
    c.create_pods("prod", "web-0")
    asked = c.jit(
        "alice", "request", "exec", "web-0", "-n", "prod", "-c", "app", "--for", "5m",
        "--reason", "INC-9: image tier", "--name", "image-web-0", "--", "ls",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    c.wait_phase("prod", "image-web-0", "Pending", timeout=60)

    approved = c.jit("bob", "approve", "image-web-0", "-n", "prod", "--yes")
    assert approved.returncode == 0, approved.stderr
    request = c.wait_phase("prod", "image-web-0", "Approved", timeout=60)
    grant = c.get("grant", request["status"]["grant"]["name"], "prod")
    assert grant is not None
    assert grant["spec"]["user"] == "alice"

    # The webhook container's grant cache now lets alice's exec through (up to the kubelet).
    admitted = c.exec("alice", "prod", "web-0", "ls")
    assert c.no_kubelet_error() in admitted.stderr, admitted.stderr
    other = c.exec("alice", "prod", "web-0", "cat", "/etc/shadow")
    assert other.stderr.startswith(DENIED), other.stderr


def test_the_audit_volumes_hold_verifiable_logs_written_as_the_pods(
    image_cluster: JitCluster,
) -> None:
    c = image_cluster
    c.assert_audit_logs_verify()
    # `--writer-id=$(POD_NAME)` was expanded from the downward API's metadata.name.
    assert {r["writer"] for r in c.records("webhook")} == {"jitgate-webhook-0"}
    assert {r["writer"] for r in c.records("operator")} == {"jitgate-operator-0"}


def test_the_containers_log_no_error_and_no_permission_problem(image_cluster: JitCluster) -> None:
    for process in (image_cluster.webhook, image_cluster.operator):
        process.check_alive()
        troubles = [
            line
            for line in process.tail(100_000).splitlines()
            if any(word in line for word in ("Traceback", "Forbidden", "forbidden", "ERROR"))
            and "status=429" not in line  # the API server's "storage (re)initializing"; retried
        ]
        assert troubles == []


def test_the_webhook_container_serves_the_session_gateway_to_the_front_proxy_only(
    image_cluster: JitCluster,
) -> None:
    """The gateway's port, from the real image as the chart runs it: a caller without the API
    server's front-proxy certificate is refused (401), whatever headers it sends."""
    c = image_cluster
    status, message = gateway_refusal(
        c,
        "/apis/sessions.jitgate.dev/v1alpha1",
        {"X-Remote-User": "alice", "X-Remote-Group": "system:masters"},
    )
    assert status == 401
    assert "answers only the Kubernetes API server's front proxy" in message
