"""Every test asserts something: a test that only runs code passes whatever that code does.

A test counts as asserting when its body has an `assert`, a `pytest.raises` or
`pytest.warns` block, or calls a helper named `assert_…` or `expect_…` (which asserts for
it, e.g. `cluster.assert_audit_logs_verify()`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CHECKING_CALLS = ("raises", "warns")
CHECKING_PREFIXES = ("assert_", "expect_")


def _test_functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test_"
        ):
            yield node


def _called_name(call: ast.Call) -> str:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return ""


def _asserts(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = _called_name(node)
            if name in CHECKING_CALLS or name.startswith(CHECKING_PREFIXES):
                return True
    return False


def test_every_test_asserts_something() -> None:
    silent = []
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in _test_functions(tree):
            if not _asserts(function):
                silent.append(f"{path.relative_to(TESTS)}:{function.lineno} {function.name}")
    assert silent == []
