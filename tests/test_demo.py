"""`make demo` in CI-like conditions: no TTY, nothing but the repository, exit code 0."""

import os
import subprocess
import sys
from pathlib import Path


def test_demo_plays_the_whole_story(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "jitgate.cli.jitgate", "demo", "--keep", str(keep)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TERM": "dumb"},
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    steps = [
        "DENIED (HTTP 403)",
        "kubectl jit request exec web-0 -n prod -c app",
        "requester stamped: alice",
        "operator: phase Pending under policy production",
        "REFUSED: alice requested this access and cannot approve it",
        "approval stamped: user=bob",
        "operator: Approved; Grant fix-web-0-",
        "ALLOWED",
        '"request": "fix-web-0"',
        "operator: Grant deleted at expiresAt, request phase Expired",
        "The audit log is intact",
        "action.allowed",
        "was edited",
        "exit code 1",
        "Demo complete",
    ]
    positions = [out.find(step) for step in steps]
    assert -1 not in positions, [s for s, p in zip(steps, positions, strict=True) if p == -1]
    assert positions == sorted(positions), "the story's steps are out of order"
    # The demo's processes are gone and its audit log stays readable where asked.
    assert list((keep / "audit").rglob("*.jsonl"))
