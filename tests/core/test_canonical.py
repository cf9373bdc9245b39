"""Canonical JSON is CPython's sorted, compact, UTF-8 encoding, whichever encoder writes it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitgate.core import canonical
from jitgate.core.canonical import canonical_json

EVERY_CHARACTER = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


def reference(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def outcome(encode: Any, value: Any) -> bytes | type[BaseException]:
    try:
        return encode(value)  # type: ignore[no-any-return]
    except (TypeError, ValueError, RecursionError) as error:
        return type(error)


def test_every_character_is_written_as_the_reference_writes_it() -> None:
    assert canonical_json(EVERY_CHARACTER) == reference(EVERY_CHARACTER)
    keys = {EVERY_CHARACTER[i : i + 3]: i for i in range(0, len(EVERY_CHARACTER), 997)}
    assert canonical_json(keys) == reference(keys)  # key order included


keys = st.text(max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats()  # NaN and infinities included: refused
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(keys, inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=3)  # not text: the reference's order
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_any_value_is_encoded_as_the_reference_encodes_it_or_refused_alike(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(reference, value)


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1.0},
        {"big": 1e16, "small": 1e-7},
        {"nan": math.nan},
        {"set": {1, 2}},
        {"bytes": b"x"},
        {"tuple": (1, "a")},
        {1: "a", "b": 2},
        "\ud800",  # a lone surrogate: UTF-8 cannot hold it
    ],
)
def test_what_msgspec_would_write_otherwise_is_the_references(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(reference, value)


def test_an_audit_record_takes_the_fast_encoder() -> None:
    # What makes a record cheaper to chain: it is written by msgspec, not the reference.
    record = {
        "type": "action.allowed",
        "actor": {"user": "alice", "groups": ["sre", "system:authenticated"]},
        "action": {"verb": "exec", "resource": "pods", "command": ["ls", "-l"], "tty": False},
        "context": {"policies": ["production"], "breakGlass": False, "maxUses": 3, "use": 1},
        "seq": 7,
        "prev": "sha256:" + "0" * 64,
    }
    assert canonical._sorted(record) == reference(record)


def test_the_light_client_encodes_without_msgspec() -> None:
    # `kubectl jit` alone installs no msgspec: the reference writes every byte then.
    script = (
        "import sys; sys.modules['msgspec'] = None\n"
        "from jitgate.core.canonical import canonical_json\n"
        "sys.stdout.write(canonical_json({'b': 1, 'a': [1.5, 'ü']}).decode())"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert ran.stdout == '{"a":[1.5,"ü"],"b":1}'
