"""Build the archive plugins/jit.yaml points at, byte for byte the same on every machine.

    python plugins/krew_archive.py OUTPUT.tar.gz     # prints its sha256

It holds the `kubectl-jit` launcher, which runs the client installed by `pip install jitgate`;
owner, group and times are fixed so the sha256 in the manifest can be checked.
"""

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = {"kubectl-jit": (HERE / "kubectl-jit", 0o755)}


def build() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (path, mode) in sorted(FILES.items()):
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def main() -> int:
    archive = build()
    Path(sys.argv[1]).write_bytes(archive)
    print(hashlib.sha256(archive).hexdigest())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
