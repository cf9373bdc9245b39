"""Property: any single modification of a valid chain is detected (and usually named)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jitgate.audit.chain import ChainHead, link
from jitgate.audit.verify import ChainReport, Entry, SegmentEnd, Witness, verify_chain
from jitgate.core.canonical import canonical_json
from jitgate.core.events import RECORD_TYPES

KEY = b"property-test-key-0123456789abcdef"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
bodies = st.fixed_dictionaries(
    {"type": st.sampled_from(RECORD_TYPES), "time": st.just("2026-11-21T10:00:00.000000Z")},
    optional={
        "actor": st.fixed_dictionaries({"user": text, "groups": st.lists(text, max_size=2)}),
        "namespace": text,
        "reason": text,
        "context": st.dictionaries(text, values, max_size=3),
    },
)


def build(items: list[dict[str, Any]], key: bytes | None) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    head: ChainHead | None = None
    for body in items:
        stored = link(body, writer="w", head=head, key=key)
        chain.append(copy.deepcopy(dict(stored.record)))
        head = stored.head
    return chain


def verify(records: list[dict[str, Any]], key: bytes | None, witness: Witness) -> ChainReport:
    items: list[Entry | SegmentEnd] = [
        Entry(f"line {number}", record) for number, record in enumerate(records, 1)
    ]
    return verify_chain("w", [*items, SegmentEnd("seg", last=True)], key=key, witnesses=[witness])


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from paths(inner, (*prefix, name))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from paths(inner, (*prefix, index))


def parent(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        root = root[step]
    return root


def witness_of(chain: list[dict[str, Any]]) -> Witness:
    return Witness(chain[-1]["seq"], chain[-1]["hash"], "head file")


def mutate(chain: list[dict[str, Any]], data: st.DataObject, keyed: bool) -> list[dict[str, Any]]:
    n = len(chain)
    kind = data.draw(
        st.sampled_from(
            ["edit", "drop", "add", "delete", "copy", "forge", "swap", "truncate"]
            if n > 1
            else ["edit", "drop", "add", "delete", "copy", "forge", "truncate"]
        ),
        label="mutation",
    )
    if kind in ("edit", "drop", "add"):
        i = data.draw(st.integers(0, n - 1), label="record")
        record = chain[i]
        before = canonical_json(record)
        if kind == "add":
            targets = [()] + [p for p in paths(record) if isinstance(parent(record, (*p, 0)), dict)]
            where = data.draw(st.sampled_from(targets), label="into")
            container = parent(record, (*where, None))
            name = data.draw(text.filter(lambda s: s not in container), label="name")
            assume(keyed or where or name != "mac")  # without a key, a MAC is never checked
            container[name] = data.draw(values, label="value")
        else:
            path = data.draw(st.sampled_from(list(paths(record))), label="path")
            holder = parent(record, path)
            if kind == "drop":
                del holder[path[-1]]
            else:
                holder[path[-1]] = data.draw(values, label="value")
        assume(canonical_json(record) != before)
        return chain
    if kind == "delete":
        del chain[data.draw(st.integers(0, n - 1), label="record")]
        return chain
    if kind == "copy":
        source = chain[data.draw(st.integers(0, n - 1), label="source")]
        chain.insert(data.draw(st.integers(0, n), label="at"), copy.deepcopy(source))
        return chain
    if kind == "forge":
        # The forger computes hashes but has no key; it may link to any record.
        after = data.draw(st.integers(0, n), label="after")
        at = data.draw(st.integers(0, n), label="at")
        assume(keyed or not (after == n and at == n))  # a keyless valid extension is legal
        head = ChainHead(chain[after - 1]["seq"], chain[after - 1]["hash"]) if after else None
        forged = link(data.draw(bodies, label="body"), writer="w", head=head, key=None)
        chain.insert(at, dict(forged.record))
        return chain
    if kind == "swap":
        i, j = data.draw(
            st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True), label="pair"
        )
        chain[i], chain[j] = chain[j], chain[i]
        return chain
    return chain[: data.draw(st.integers(0, n - 1), label="keep")]


@SETTINGS
@given(items=st.lists(bodies, min_size=1, max_size=6), keyed=st.booleans(), data=st.data())
def test_any_single_modification_is_detected(
    items: list[dict[str, Any]], keyed: bool, data: st.DataObject
) -> None:
    key = KEY if keyed else None
    chain = build(items, key)
    witness = witness_of(chain)
    assert verify(chain, key, witness).ok
    report = verify(mutate(copy.deepcopy(chain), data, keyed), key, witness)
    assert report.problem is not None


@SETTINGS
@given(items=st.lists(bodies, min_size=3, max_size=8), data=st.data())
def test_the_kind_of_damage_is_named(items: list[dict[str, Any]], data: st.DataObject) -> None:
    chain = build(items, KEY)
    witness = witness_of(chain)
    n = len(chain)
    i = data.draw(st.integers(1, n - 2), label="middle")
    copied = chain[data.draw(st.integers(0, i), label="copy")]
    cases: dict[str, list[dict[str, Any]]] = {
        "deleted": chain[:i] + chain[i + 1 :],
        "reordered": [*chain[:i], chain[i + 1], chain[i], *chain[i + 2 :]],
        "inserted": [*chain[: i + 1], copied, *chain[i + 1 :]],
        "truncated": chain[: data.draw(st.integers(1, n - 1), label="keep")],
    }
    edited = copy.deepcopy(chain)
    edited[i]["reason"] = str(edited[i].get("reason")) + "!"
    cases["edited"] = edited
    resigned = copy.deepcopy(chain)
    resigned[i]["mac"] = "hmac-sha256:" + "0" * 64
    cases["bad-mac"] = resigned
    for kind, records in cases.items():
        report = verify(records, KEY, witness)
        assert report.problem is not None and report.problem.kind == kind, (kind, report.problem)
