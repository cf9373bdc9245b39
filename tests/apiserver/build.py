"""Build the test-only kube-apiserver-with-embedded-etcd binary (tests/apiserver/main.go).

Usable two ways:

* as a script: ``python tests/apiserver/build.py`` builds if needed and prints the time;
* from the test suite: conftest.py loads this file by path (pytest runs with
  ``--import-mode=importlib``, so it is not importable as a package) and calls
  :func:`ensure_binary`, which raises :class:`BuildUnavailable` when the tier cannot
  run here (no Go toolchain, Go module proxy unreachable). Any other build failure
  raises :class:`BuildFailed`: that is a real error and must not turn into a skip.

The binary is rebuilt only when it is missing or older than go.mod, go.sum or a
*.go file of this directory. Go's own build cache makes a rebuild after a small
change a matter of compiling one package and linking; a cold build compiles
all of kube-apiserver and etcd (minutes on 2 cores: run it ahead with this script).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SRC_DIR = Path(__file__).resolve().parent
BIN_DIR = SRC_DIR / "bin"
BINARY = BIN_DIR / "kube-apiserver-etcd"
BUILD_LOG = BIN_DIR / "build.log"
# Fallback locations when `go` is not on PATH (the official tarball's location).
GO_CANDIDATES = ("/usr/local/go/bin/go", str(Path.home() / "go" / "bin" / "go"))
BUILD_TIMEOUT_S = 60 * 60

# Substrings of `go build` / module download errors that mean "the network or the module
# proxy is not reachable" rather than "the code does not build".
_NETWORK_MARKERS = (
    "dial tcp",
    "no such host",
    "i/o timeout",
    "connection refused",
    "connection reset",
    "network is unreachable",
    "tls handshake timeout",
    "proxy.golang.org",
    "sum.golang.org",
    "server misbehaving",
    "temporary failure in name resolution",
    "module lookup disabled by goproxy=off",
)


class BuildUnavailable(Exception):
    """The tier cannot be built on this machine; the message is the skip reason."""


class BuildFailed(Exception):
    """`go build` failed for a reason other than a missing toolchain or network."""


@dataclass(frozen=True)
class BuildResult:
    binary: Path
    built: bool  # False: the existing binary was up to date
    seconds: float


def find_go() -> str | None:
    go = shutil.which("go")
    if go:
        return go
    for candidate in GO_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def sources(src_dir: Path = SRC_DIR) -> list[Path]:
    """What the binary depends on (this file too: it holds the build flags)."""
    return [
        src_dir / "go.mod",
        src_dir / "go.sum",
        *sorted(src_dir.glob("*.go")),
        Path(__file__).resolve(),
    ]


def kubernetes_version(src_dir: Path = SRC_DIR) -> str:
    """The k8s.io/kubernetes version required by go.mod (e.g. ``v1.33.13``)."""
    m = re.search(
        r"^\s*k8s\.io/kubernetes\s+(v\d+\.\d+\.\d+\S*)", (src_dir / "go.mod").read_text(), re.M
    )
    if not m:
        raise BuildFailed(f"no k8s.io/kubernetes requirement in {src_dir / 'go.mod'}")
    return m.group(1)


def ldflags(version: str) -> str:
    """Strip symbols (faster link, smaller binary) and stamp the Kubernetes version.

    Without the stamp the server reports ``v0.0.0-master+$Format:%H$``, which
    ``kubectl version`` cannot parse.
    """
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    stamp = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return " ".join(["-s", "-w", *(f"-X {pkg}.{k}={v}" for k, v in stamp.items())])


def is_stale(binary: Path = BINARY, src_dir: Path = SRC_DIR) -> bool:
    """True when the binary is missing or older than any of its sources."""
    try:
        built_at = binary.stat().st_mtime
    except FileNotFoundError:
        return True
    return any(p.stat().st_mtime > built_at for p in sources(src_dir) if p.exists())


def _looks_like_network_failure(output: str) -> bool:
    low = output.lower()
    return any(marker in low for marker in _NETWORK_MARKERS)


def _first_error_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("go: downloading")]
    for ln in lines:
        if _looks_like_network_failure(ln):
            return ln
    return lines[-1] if lines else "(no output)"


def build(
    binary: Path = BINARY,
    src_dir: Path = SRC_DIR,
    *,
    force: bool = False,
    log: Path = BUILD_LOG,
    echo: Callable[[str], object] | None = None,
) -> BuildResult:
    """Build ``binary`` from ``src_dir`` if it is stale (or ``force``).

    Serialised across processes with a lock file, written atomically (build to a
    temporary name, then rename), so concurrent test sessions share one build.
    ``echo`` (a callable taking a str) receives progress lines.
    """
    say = echo or (lambda _msg: None)
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and not is_stale(binary, src_dir):
            return BuildResult(binary, False, 0.0)
        go = find_go()
        if go is None:
            looked = ", ".join(["`go` on PATH", *GO_CANDIDATES])
            raise BuildUnavailable(
                f"Go toolchain not found (looked for {looked}): "
                "the real kube-apiserver tier is built from Go modules"
            )
        tmp = binary.with_name(binary.name + f".tmp{os.getpid()}")
        version = kubernetes_version(src_dir)
        cmd = [go, "build", "-trimpath", f"-ldflags={ldflags(version)}", "-o", str(tmp), "."]
        say(f"building {binary.name} (kube-apiserver {version}) with {go}; cold: minutes")
        newest_source = max(p.stat().st_mtime for p in sources(src_dir) if p.exists())
        start = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                cwd=src_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildFailed(f"`go build` did not finish in {BUILD_TIMEOUT_S} s") from exc
        seconds = time.monotonic() - start
        output = proc.stdout or ""
        log.write_text(f"$ {' '.join(cmd)}  (cwd {src_dir})\n{output}\nexit {proc.returncode}\n")
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            if "requires go >=" in output:
                raise BuildUnavailable(
                    f"the Go toolchain at {go} is too old for tests/apiserver/go.mod: "
                    f"{_first_error_line(output)}"
                )
            if _looks_like_network_failure(output):
                raise BuildUnavailable(
                    "Go module proxy unreachable while building the kube-apiserver test "
                    f"binary: {_first_error_line(output)} (full log: {log})"
                )
            raise BuildFailed(
                f"`go build` failed (exit {proc.returncode}); see {log}:\n{output[-4000:]}"
            )
        # Date the binary as of its newest source when the build started, not as of the
        # link: a source edited while `go build` ran then still counts as newer.
        os.utime(tmp, (newest_source, newest_source))
        os.replace(tmp, binary)
        say(f"built {binary} in {seconds:.1f} s")
        return BuildResult(binary, True, seconds)


def ensure_binary(echo: Callable[[str], object] | None = None) -> BuildResult:
    """Return the up-to-date binary, building it if needed (see :func:`build`)."""
    return build(echo=echo)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    force = "--force" in args
    try:
        result = build(force=force, echo=print)
    except BuildUnavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 3
    except BuildFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    if not result.built:
        print(f"{result.binary} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
