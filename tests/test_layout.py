"""The repository layout keeps `operator/` from shadowing the standard library."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_operator_from_repo_root_is_the_standard_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.__file__)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out).name == "operator.py"
    assert not Path(out).is_relative_to(REPO)


def test_operator_and_webhook_are_importable_under_jitgate() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import jitgate.operator as o, jitgate.webhook as w; print(o.__file__, w.__file__)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(out[0]).parent == REPO / "operator"
    assert Path(out[1]).parent == REPO / "webhook"


def test_repository_root_is_not_on_sys_path_in_tests() -> None:
    assert str(REPO) not in sys.path
    assert "" not in sys.path
