"""The real API server tier: a session-scoped ``kube_apiserver`` fixture, and the
binaries of kube-apiserver, kube-controller-manager and kwok for tiers that start their own.

The binaries are built from Go modules by build.py (only when stale, each build's time
printed); when Go is missing or the Go module proxy cannot be reached, every test using
them is skipped with one reason. See harness.py for what the server has (and lacks: no
scheduler, no kubelet but kwok's where a tier starts it).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apiserver import build, harness

HERE = Path(__file__).resolve().parent


def _say(config: pytest.Config, message: str) -> None:
    """Show a line on the terminal even while pytest captures output (and with -q)."""
    line = f"[kube-apiserver tier] {message}"
    capman = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)


def _binary(config: pytest.Config, target: build.Target) -> Path:
    try:
        result = build.ensure_binary(target, echo=lambda msg: _say(config, msg))
    except build.BuildUnavailable as exc:
        pytest.skip(f"real kube-apiserver tier unavailable: {exc}")
    except build.BuildFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    if not result.built:
        _say(config, f"binary up to date ({result.binary})")
    return result.binary


@pytest.fixture(scope="session")
def kube_apiserver_binary(request: pytest.FixtureRequest) -> Path:
    """The built kube-apiserver-etcd binary (built here if missing or stale)."""
    return _binary(request.config, build.KUBE_APISERVER)


@pytest.fixture(scope="session")
def kube_controller_manager_binary(request: pytest.FixtureRequest) -> Path:
    """The built kube-controller-manager binary (built here if missing or stale)."""
    return _binary(request.config, build.KUBE_CONTROLLER_MANAGER)


@pytest.fixture(scope="session")
def kwok_binary(request: pytest.FixtureRequest) -> Path:
    """The built kwok binary (built here if missing or stale)."""
    return _binary(request.config, build.KWOK)


@pytest.fixture(scope="session")
def kube_apiserver(
    request: pytest.FixtureRequest,
    kube_apiserver_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[harness.KubeAPIServer]:
    """A running kube-apiserver on 127.0.0.1 with static-token personas.

    Attributes: ``url``, ``ca_file``, ``tmpdir``, ``personas`` (name -> Persona),
    ``kubeconfig(persona) -> Path``, ``kubectl(persona, *args, input=, check=,
    timeout=)``, ``akubectl`` (async), ``token(persona)``, ``request(method, path,
    who=, body=)``, ``apply(persona, *objects)``, ``create_namespace(name, labels)``,
    ``create_node(name) -> kubelet port``, ``ca.issue(...)`` for more certificates,
    ``log_file``, ``startup_seconds``.
    """
    config = request.config
    tmpdir = tmp_path_factory.mktemp("kube-apiserver")
    with harness.start_kube_apiserver(kube_apiserver_binary, tmpdir) as server:
        _say(
            config,
            f"ready at {server.url} in {server.startup_seconds:.2f} s (log {server.log_file})",
        )
        yield server
        stop_start = time.monotonic()
    _say(config, f"stopped in {time.monotonic() - stop_start:.2f} s")
