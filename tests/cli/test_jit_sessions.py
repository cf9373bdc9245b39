"""`kubectl jit exec|attach|port-forward`: kubectl's own command line, pointed at the session
gateway's path on the current context's API server."""

from __future__ import annotations

import pytest

from jitgate.cli.errors import UsageError
from jitgate.cli.kubectl_jit.streams import kubectl_argv, stream_command

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://api.example:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: ctx
  context: {cluster: c, user: u, namespace: team}
current-context: ctx
"""
PREFIX = "https://api.example:6443/apis/sessions.jitgate.dev/v1alpha1/namespaces"


def test_the_stream_commands_are_found_after_connection_flags() -> None:
    assert stream_command(["exec", "-it", "web-0"]) == ("exec", ["-it", "web-0"])
    assert stream_command(["--kubeconfig", "k", "-n", "prod", "attach", "web-0"]) == (
        "attach", ["--kubeconfig", "k", "-n", "prod", "web-0"])  # fmt: skip
    assert stream_command(["--context=x", "port-forward", "pod/a", "80"]) == (
        "port-forward", ["--context=x", "pod/a", "80"])  # fmt: skip
    assert stream_command(["request", "exec", "web-0"]) is None


def test_kubectl_is_pointed_at_the_gateway_for_the_namespace(tmp_path) -> None:
    config = tmp_path / "config"
    config.write_text(KUBECONFIG)
    argv = kubectl_argv(
        "exec", ["--kubeconfig", str(config), "-it", "-n", "prod", "web-0", "--", "sh", "-n"],
        "/usr/bin/kubectl",
    )  # fmt: skip
    assert argv == [
        "/usr/bin/kubectl", f"--kubeconfig={config}",
        f"--server={PREFIX}/prod/sessions/kubectl", "--namespace=prod",
        "exec", "-it", "web-0", "--", "sh", "-n",
    ]  # fmt: skip
    # Without -n: the context's namespace.
    forward = kubectl_argv("port-forward", [f"--kubeconfig={config}", "pod/web-0", "8080:80"], "k")
    assert forward[2:4] == [f"--server={PREFIX}/team/sessions/kubectl", "--namespace=team"]


def test_a_flag_without_its_value_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="flag -n needs a value"):
        kubectl_argv("exec", ["web-0", "-n"], "k")
