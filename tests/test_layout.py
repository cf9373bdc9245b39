"""The repository layout never shadows the standard library, wherever a Python starts in it.

A fresh virtual environment's interpreter (not the project's, whose `site` may already have
loaded `operator`) puts the directory it starts in first on `sys.path`. No folder of the
repository may therefore hold a module or package named like a standard-library module.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tracked_files() -> list[Path]:
    """The repository's own files (build output and virtual environments are not its folders)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name]


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("fresh-venv")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    return env_dir / "bin" / "python"


@pytest.mark.parametrize("start", ["", "operator", "operator/src", "webhook/src", "tests"])
def test_fresh_venv_python_imports_the_standard_library(fresh_python: Path, start: str) -> None:
    result = subprocess.run(
        [str(fresh_python), "-c", "import re, operator, selectors; print(operator.__file__)"],
        cwd=REPO / start,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert not Path(result.stdout.strip()).is_relative_to(REPO)


def test_python_m_pytest_from_the_root_sees_the_standard_library(fresh_python: Path) -> None:
    # `python -m` puts the working directory first on sys.path, as `python -m pytest` does.
    result = subprocess.run(
        [str(fresh_python), "-m", "json.tool", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_no_folder_holds_a_module_named_like_the_standard_library() -> None:
    stdlib = set(sys.stdlib_module_names)
    clashes = set()
    for path in _tracked_files():
        relative = path.relative_to(REPO)
        if path.suffix == ".py" and path.stem in stdlib and path.name != "__init__.py":
            clashes.add(str(relative))
        if path.name == "__init__.py" and path.parent.name in stdlib:
            clashes.add(str(relative.parent))
    assert sorted(clashes) == []


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
    assert Path(out[0]).parent == REPO / "operator" / "src"
    assert Path(out[1]).parent == REPO / "webhook" / "src"


def test_repository_root_is_not_on_sys_path_in_tests() -> None:
    assert str(REPO) not in sys.path
    assert "" not in sys.path


def test_every_package_is_listed_for_setuptools() -> None:
    # The package-dir mapping needs an explicit list; a package left out of it is missing from
    # the wheel and the image while the editable install of `make venv` still imports it.
    import tomllib

    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {source: package for package, source in setup["package-dir"].items()}
    found = set()
    for init in _tracked_files():
        if init.name != "__init__.py":
            continue
        relative = init.parent.relative_to(REPO).as_posix()
        for source, package in roots.items():
            if relative == source or relative.startswith(source + "/"):
                found.add(package + relative.removeprefix(source).replace("/", "."))
    assert sorted(found - set(setup["packages"])) == []
