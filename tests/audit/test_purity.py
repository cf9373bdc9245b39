"""Chain, verification, selection and review are pure; only sinks and readers do I/O."""

import ast
from pathlib import Path

import pytest

AUDIT = Path(__file__).resolve().parents[2] / "jitgate" / "audit"
PURE = ["chain", "verify", "query", "report", "model", "timefmt", "errors", "sink"]
FORBIDDEN = {"os", "pathlib", "asyncio", "psycopg", "socket", "subprocess", "fcntl", "shutil"}


@pytest.mark.parametrize("module", PURE)
def test_pure_audit_module_does_no_io(module: str) -> None:
    tree = ast.parse((AUDIT / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            if node.module.startswith("jitgate.audit."):
                assert node.module.rsplit(".", 1)[1] in PURE, node.module
    assert imported & FORBIDDEN == set()
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert "open" not in calls
