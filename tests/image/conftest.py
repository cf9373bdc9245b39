"""The image tier: the image `make image` builds, run with podman as the chart runs it.

Fixtures: ``jitgate_image`` (session: builds the image when the files it is built from
changed, prints the build's report; skipped with one reason where podman and buildah cannot
build or run it), ``image_cluster`` (module: a kube-apiserver of its own with the chart's
objects and the webhook and operator containers, an ``e2e.cluster.JitCluster``).
When a test fails, what the containers logged during it is attached to the report.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from apiserver import conftest as apiserver_tier
from apiserver import harness
from chart import render
from e2e.cluster import JitCluster
from e2e.processes import LocalProcess
from image import containers

kube_apiserver_binary = apiserver_tier.kube_apiserver_binary
LOGS = pytest.StashKey[list[LocalProcess]]()


def say(config: pytest.Config, message: str) -> None:
    apiserver_tier._say(config, f"image: {message}")


@pytest.fixture(scope="session")
def jitgate_image(request: pytest.FixtureRequest) -> str:
    """The chart's image reference, built by container/build-image.sh."""
    try:
        build = containers.build_image()
    except containers.Unavailable as exc:
        pytest.skip(f"the image tier needs podman and buildah that can run here: {exc}")
    except containers.BuildFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    for line in build.output.splitlines():
        if line.startswith("make image:"):
            say(request.config, line.removeprefix("make image: "))
    say(request.config, f"make image took {build.seconds:.1f} s")
    workload = render.find(render.render_chart(), "StatefulSet", render.WEBHOOK_NAME)
    image: str = workload["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


@pytest.fixture(scope="module")
def image_cluster(
    request: pytest.FixtureRequest,
    jitgate_image: str,
    kube_apiserver_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JitCluster]:
    config = request.config
    config.stash[LOGS] = []
    tmpdir = tmp_path_factory.mktemp("image")
    started = time.monotonic()
    with (
        harness.start_kube_apiserver(
            kube_apiserver_binary, tmpdir / "kube-apiserver", front_proxy=True
        ) as api,
        containers.install(
            api,
            tmpdir / "jitgate",
            echo=lambda message: say(config, message),
            on_process=config.stash[LOGS].append,
        ) as cluster,
    ):
        yield cluster
    say(config, f"tier done in {time.monotonic() - started:.1f} s")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for process in item.config.stash.get(LOGS, []):
            report.sections.append((f"{process.name} container log", process.tail(150)))
    return report
