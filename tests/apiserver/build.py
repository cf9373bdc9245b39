"""Build the tier's test-only binaries from Go modules: the kube-apiserver-with-embedded-etcd
(main.go) and the kube-controller-manager (kube-controller-manager/main.go), both from this
directory's module and the same Kubernetes modules; and kwok (kwok/main.go, a module of its
own: kwok v0.8.0 needs newer Kubernetes modules than the API server).

The same machinery builds the webhook bench's load generator (tests/bench/loadgen, a
stdlib-only module: seconds even on a cold cache) into tests/bench/bin.

Usable two ways:

* as a script: ``python tests/apiserver/build.py [--force]`` builds what is stale and prints
  the time of each build;
* from the test suite: the fixtures call :func:`ensure_binary` with a :class:`Target`,
  which raises :class:`BuildUnavailable` when the tier cannot run here (no Go toolchain,
  Go module proxy unreachable). Any other build failure raises :class:`BuildFailed`: that
  is a real error and must not turn into a skip.

A binary is rebuilt only when it is missing or older than its module's go.mod and go.sum, a
*.go file of its package or this file. Go's own build cache, shared by all binaries, makes a
rebuild after a small change a matter of compiling one package and linking; a cold build
compiles all of kube-apiserver and etcd (minutes on 2 cores: run it ahead with this script),
the controller-manager then adds a few minutes cold and about a minute warm. kwok shares
almost nothing with them (other module versions): cold, about 3.5 CPU-minutes (some 2 minutes
on 2 idle cores; 11.5 minutes measured on a machine busy with other builds and test runs) plus
~25 s of module downloads; warm, a link of a few CPU-seconds (under a minute even when busy).
"""

from __future__ import annotations

import fcntl
import json
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


@dataclass(frozen=True)
class Patch:
    """A file of a dependency replaced at build time: ``path`` inside module ``module`` (the
    version go.mod requires) by ``replacement``, relative to the target's module directory.

    The module is copied out of the module cache (``go build -overlay`` may not replace files
    there) into ``bin/NAME.src``, the file replaced, and the build uses a copy of go.mod that
    points the module at it (``-modfile``): the repository's go.mod stays as it is.
    """

    module: str
    path: str
    replacement: str


@dataclass(frozen=True)
class Target:
    """One binary of the tier: its file name under bin/, its Go module and package."""

    name: str
    package: str  # the `go build` package argument, relative to the module directory
    program: str  # what it runs, for messages
    module: str = "."  # the directory of its go.mod, relative to this directory
    # Stamp k8s.io/component-base/version with go.mod's k8s.io/kubernetes version (the
    # Kubernetes components; kwok has a version of its own).
    kubernetes_stamp: bool = True
    patches: tuple[Patch, ...] = ()

    def module_dir(self, src_dir: Path = SRC_DIR) -> Path:
        return src_dir / self.module

    def binary(self, bin_dir: Path = BIN_DIR) -> Path:
        return bin_dir / self.name

    def log(self, bin_dir: Path = BIN_DIR) -> Path:
        return bin_dir / f"{self.name}.build.log"


KUBE_APISERVER = Target("kube-apiserver-etcd", ".", "kube-apiserver with embedded etcd")
KUBE_CONTROLLER_MANAGER = Target(
    "kube-controller-manager", "./kube-controller-manager", "kube-controller-manager"
)
KWOK = Target(
    "kwok", ".", "simulated nodes and their kubelet API", module="kwok",
    kubernetes_stamp=False,
    # kwok v0.8.0 answers a command's non-zero exit as an internal error (kubectl exits 1);
    # with this one-function change the exit code reaches kubectl, as from a kubelet.
    patches=(Patch("sigs.k8s.io/kwok", "pkg/kwok/server/debugging_exec.go",
                   "patches/debugging_exec.go.patched"),),
)  # fmt: skip
TARGETS = (KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KWOK)


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


def sources(target: Target, src_dir: Path = SRC_DIR) -> list[Path]:
    """What the binary depends on (this file too: it holds the build flags)."""
    module = target.module_dir(src_dir)
    return [
        module / "go.mod",
        module / "go.sum",
        *sorted((module / target.package).glob("*.go")),
        *(module / patch.replacement for patch in target.patches),
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


def ldflags(version: str | None) -> str:
    """Strip symbols (faster link, smaller binary) and stamp the Kubernetes ``version``.

    Without the stamp the server reports ``v0.0.0-master+$Format:%H$``, which
    ``kubectl version`` cannot parse. ``None``: no stamp.
    """
    if version is None:
        return "-s -w"
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


def is_stale(target: Target, src_dir: Path = SRC_DIR, bin_dir: Path = BIN_DIR) -> bool:
    """True when the binary is missing or older than any of its sources."""
    try:
        built_at = target.binary(bin_dir).stat().st_mtime
    except FileNotFoundError:
        return True
    return any(p.stat().st_mtime > built_at for p in sources(target, src_dir) if p.exists())


def patched_modfile(go: str, target: Target, module: Path, bin_dir: Path) -> list[str]:
    """``-modfile=bin/NAME.go.mod`` for a target with patches (none: no flag); see
    :class:`Patch`."""
    if not target.patches:
        return []
    source = bin_dir / f"{target.name}.src"
    replaces: list[str] = []
    for patch in target.patches:
        proc = subprocess.run(
            [go, "mod", "download", "-json", patch.module],
            cwd=module,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        try:
            downloaded = json.loads(proc.stdout)
            original, version = Path(downloaded["Dir"]), downloaded["Version"]
        except (ValueError, KeyError):
            output = proc.stdout + proc.stderr
            if _looks_like_network_failure(output):
                raise BuildUnavailable(
                    f"Go module proxy unreachable while downloading {patch.module}: "
                    f"{_first_error_line(output)}"
                ) from None
            raise BuildFailed(f"`go mod download {patch.module}` failed:\n{output}") from None
        copy = source / f"{patch.module}@{version}"
        if not copy.exists():
            # copyfile: the module cache's files and directories are read-only.
            shutil.copytree(original, copy, copy_function=shutil.copyfile)
            for directory, _, _ in os.walk(copy):
                os.chmod(directory, 0o755)
        shutil.copyfile(module / patch.replacement, copy / patch.path)
        replaces.append(f"replace {patch.module} => {copy}")
    modfile = bin_dir / f"{target.name}.go.mod"
    modfile.write_text((module / "go.mod").read_text() + "\n" + "\n".join(replaces) + "\n")
    shutil.copyfile(module / "go.sum", modfile.with_suffix(".sum"))
    return [f"-modfile={modfile}"]


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
    target: Target = KUBE_APISERVER,
    src_dir: Path = SRC_DIR,
    bin_dir: Path = BIN_DIR,
    *,
    force: bool = False,
    echo: Callable[[str], object] | None = None,
) -> BuildResult:
    """Build ``target`` from ``src_dir`` into ``bin_dir`` if it is stale (or ``force``).

    Serialised across processes (and targets: they share one Go build cache and two
    cores) with a lock file, written atomically (build to a temporary name, then
    rename), so concurrent test sessions share one build. ``echo`` (a callable taking a
    str) receives progress lines.
    """
    say = echo or (lambda _msg: None)
    binary, log = target.binary(bin_dir), target.log(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    with open(bin_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and not is_stale(target, src_dir, bin_dir):
            return BuildResult(binary, False, 0.0)
        go = find_go()
        if go is None:
            looked = ", ".join(["`go` on PATH", *GO_CANDIDATES])
            raise BuildUnavailable(
                f"Go toolchain not found (looked for {looked}): "
                f"the {target.program} is built from a Go module"
            )
        tmp = binary.with_name(binary.name + f".tmp{os.getpid()}")
        module = target.module_dir(src_dir)
        version = kubernetes_version(module) if target.kubernetes_stamp else None
        cmd = [
            go, "build", "-trimpath", f"-ldflags={ldflags(version)}",
            *patched_modfile(go, target, module, bin_dir), "-o", str(tmp), target.package,
        ]  # fmt: skip
        what = f"{target.program} {version}" if version else target.program
        say(f"building {binary.name} ({what}) with {go}; cold: minutes")
        newest_source = max(p.stat().st_mtime for p in sources(target, src_dir) if p.exists())
        start = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                cwd=module,
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
        log.write_text(f"$ {' '.join(cmd)}  (cwd {module})\n{output}\nexit {proc.returncode}\n")
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            if "requires go >=" in output:
                raise BuildUnavailable(
                    f"the Go toolchain at {go} is too old for {module / 'go.mod'}: "
                    f"{_first_error_line(output)}"
                )
            if _looks_like_network_failure(output):
                raise BuildUnavailable(
                    f"Go module proxy unreachable while building the {target.program} test "
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


def ensure_binary(
    target: Target = KUBE_APISERVER, echo: Callable[[str], object] | None = None
) -> BuildResult:
    """Return the up-to-date binary, building it if needed (see :func:`build`)."""
    return build(target, echo=echo)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    force = "--force" in args
    for target in TARGETS:
        try:
            result = build(target, force=force, echo=print)
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
