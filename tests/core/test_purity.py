"""The core decides; it does no I/O. Adapters (operator, webhook, CLI) do the talking."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "jitgate" / "core"
PURE_MODULES = [
    "actions",
    "approvals",
    "canonical",
    "clock",
    "durations",
    "grant_index",
    "lifecycle",
    "matching",
    "api",
    "policy",
    "label_selectors",
]
FORBIDDEN = {
    "kubernetes",
    "kopf",
    "kmock",
    "fastapi",
    "starlette",
    "uvicorn",
    "aiohttp",
    "httpx",
    "requests",
    "psycopg",
    "socket",
    "subprocess",
    "urllib",
    "http",
    "os",
    "pathlib",
    "asyncio",
}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_core_module_imports_no_io(module: str) -> None:
    tree = ast.parse((CORE / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported & FORBIDDEN == set()
    assert "open" not in {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
