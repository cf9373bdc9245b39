"""Running `kubectl jit …` the way users do: the real kubectl finding the plugin on PATH."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apiserver import conftest as _apiserver_tier
from apiserver import harness
from support import objects

from jitgate.devtools.emulator import EmulatorHandle

ACCESS_REQUESTS = "jitgate.dev/v1alpha1/accessrequests"
GRANTS = "jitgate.dev/v1alpha1/grants"
PLUGIN_DIR = Path(sys.executable).parent  # the venv's bin, where `kubectl-jit` is installed
CRDS = Path(__file__).resolve().parents[2] / "crds"

kube_apiserver_binary = _apiserver_tier.kube_apiserver_binary


@pytest.fixture(scope="module")
def crd_apiserver(
    kube_apiserver_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[harness.KubeAPIServer]:
    """A real kube-apiserver of the module's own with jitgate's CRDs and nothing else (no
    webhook, no operator): the module adds the RBAC it tests."""
    if not Path(harness.KUBECTL).exists():
        pytest.skip("the real kubectl binary is not installed")
    with harness.start_kube_apiserver(
        kube_apiserver_binary, tmp_path_factory.mktemp("cli")
    ) as server:
        server.install_crds(CRDS)
        yield server


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Jit:
    """`await jit("list", user="bob")` runs `kubectl jit --kubeconfig … --context bob list`."""

    kubectl: str
    kubeconfig: Path
    home: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("JITGATE_")}
        env.pop("KUBECONFIG", None)
        env["PATH"] = f"{PLUGIN_DIR}{os.pathsep}{env.get('PATH', '')}"
        env["HOME"] = str(self.home)  # never the developer's own ~/.kube/config
        return {**env, **(extra or {})}

    def argv(
        self, args: tuple[str, ...], user: str | None, kubeconfig: Path | None, from_env: bool
    ) -> list[str]:
        config = [] if from_env else ["--kubeconfig", str(kubeconfig or self.kubeconfig)]
        context = ["--context", user] if user else []
        # kubectl refuses flags before a plugin's name, so they go right after `jit`.
        return [self.kubectl, "jit", *config, *context, *args]

    async def start(
        self,
        *args: str,
        user: str | None = None,
        kubeconfig: Path | None = None,
        stdin: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> asyncio.subprocess.Process:
        """Start it; with `KUBECONFIG` in `env`, no `--kubeconfig` is passed."""
        from_env = env is not None and "KUBECONFIG" in env
        return await asyncio.create_subprocess_exec(
            *self.argv(args, user, kubeconfig, from_env),
            stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(env),
        )

    async def __call__(
        self,
        *args: str,
        user: str | None = None,
        kubeconfig: Path | None = None,
        stdin: int | None = None,
        env: Mapping[str, str] | None = None,
        seconds: float = 30,
    ) -> Result:
        process = await self.start(*args, user=user, kubeconfig=kubeconfig, stdin=stdin, env=env)
        return await self.finish(process, seconds)

    @staticmethod
    async def finish(process: asyncio.subprocess.Process, seconds: float = 30) -> Result:
        """Wait for a started `kubectl jit` to exit (killing it after `seconds`)."""
        try:
            async with asyncio.timeout(seconds):
                out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        return Result(process.returncode or 0, out.decode(), err.decode())


@pytest.fixture
def jit(kubeconfig: Path, tmp_path: Path) -> Jit:
    binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not binary:
        pytest.skip("the real kubectl binary is not installed (set KUBECTL or put it on PATH)")
    if not (PLUGIN_DIR / "kubectl-jit").exists():
        pytest.skip(f"the kubectl-jit console script is not installed in {PLUGIN_DIR}")
    home = tmp_path / "home"
    home.mkdir()
    return Jit(binary, kubeconfig, home)


@dataclass
class Operator:
    """The test plays the jitgate operator (and the webhook's stamping) on the emulator."""

    handle: EmulatorHandle

    def request(self, name: str, namespace: str = "prod") -> dict[str, Any]:
        return self.handle.emulator.read_object(ACCESS_REQUESTS, namespace, name)

    def seed(self, name: str, *, requester: str = "alice", namespace: str = "prod",
             status: Mapping[str, Any] | None = None, **spec: Any) -> dict[str, Any]:  # fmt: skip
        actions = [{"verb": "exec", "resource": "pods", "names": ["web-0"]}]
        fields = {"actions": actions, "requester": objects.requester(requester), **spec}
        body = objects.access_request(name, namespace, **fields)
        self.handle.emulator.create_object(ACCESS_REQUESTS, body, namespace)
        if status is not None:
            self.set_status(name, dict(status), namespace)
        return self.request(name, namespace)

    def set_status(self, name: str, status: dict[str, Any], namespace: str = "prod") -> None:
        self.handle.emulator.patch_object(
            ACCESS_REQUESTS, namespace, name, {"status": status}, subresource="status"
        )

    def create_grant(self, name: str, spec: dict[str, Any], namespace: str = "prod") -> None:
        body = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
        self.handle.emulator.create_object(GRANTS, body, namespace)


@pytest.fixture
def operator(emulator: EmulatorHandle) -> Operator:
    return Operator(emulator)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
