"""A throwaway PostgreSQL server for tests and benchmarks.

initdb and postgres refuse to run as root, so as root they run as the `postgres` user with
data and socket in a temporary directory that user owns. The server listens on 127.0.0.1
only, on a free port. Imported as `support.postgres` (tests and benchmarks).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY = "database system is ready to accept connections"


def find_bin_dir() -> Path | None:
    """The real PostgreSQL bin directory (PATH only has symlinks, without pg_isready)."""
    initdb = shutil.which("initdb") or "/usr/local/bin/initdb"
    if not os.path.exists(initdb):
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not candidates:
            return None
        initdb = str(candidates[-1])
    return Path(os.path.realpath(initdb)).parent


def missing_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None if they can."""
    bin_dir = find_bin_dir()
    if bin_dir is None or not (bin_dir / "postgres").exists():
        return "PostgreSQL binaries (initdb, postgres) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no `postgres` user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """`start()` it, use `url(database, user)`, `stop()` it; also a context manager."""

    bin_dir: Path = field(default_factory=lambda: find_bin_dir() or Path("/nonexistent"))
    port: int = 0
    base: Path | None = None
    process: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)

    def _as_owner(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        owner = pwd.getpwnam("postgres")
        return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}

    def start(self, timeout: float = 30.0) -> PostgresServer:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        self.base = Path(tempfile.mkdtemp(prefix="jitgate-pg-"))
        data, sockets = self.base / "data", self.base / "sockets"
        sockets.mkdir()
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self.base, sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.base), "LC_ALL": "C.UTF-8"}
        subprocess.run(
            [self.bin_dir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--no-sync", "--no-instructions"],
            check=True, capture_output=True, cwd=self.base, env=env, **self._as_owner(),
        )  # fmt: skip
        self.port = _free_port()
        self.process = subprocess.Popen(
            [self.bin_dir / "postgres", "-D", data, "-k", sockets, "-h", "127.0.0.1",
             "-p", str(self.port), "-c", "logging_collector=off", "-c", "fsync=on"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            cwd=self.base, env=env, **self._as_owner(),
        )  # fmt: skip
        ready = threading.Event()
        threading.Thread(target=self._drain, args=(ready,), daemon=True).start()
        if not ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("PostgreSQL did not start:\n" + "".join(self.log[-20:]))
        return self

    def _drain(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if READY in line:
                ready.set()
        ready.set()  # the server died; start() notices from poll()

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser through psql; for set-up outside any event loop."""
        result = subprocess.run(
            [self.bin_dir / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return result.stdout

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
