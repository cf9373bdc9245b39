"""RFC 6962 Merkle trees: the transparency-dev/merkle vectors, every bit flip, random trees."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitgate.audit.merkle import (
    EMPTY_ROOT,
    CompactTree,
    ProofError,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "transparency-dev-merkle.json").read_text()
)
LEAVES = [leaf_hash(bytes.fromhex(data)) for data in VECTORS["leafInputsHex"]]


def b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def proof_of(case: dict[str, Any]) -> list[bytes]:
    return [b64(node) for node in case["proof"] or []]


def test_hashes_are_those_of_rfc_6962() -> None:
    # The reference's own checks (transparency-dev/merkle rfc6962/rfc6962_test.go).
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


@pytest.mark.parametrize("size", range(len(VECTORS["rootHashesHex"])))
def test_roots_of_the_reference_trees(size: int) -> None:
    expected = bytes.fromhex(VECTORS["rootHashesHex"][size])
    assert root(LEAVES[:size]) == expected
    tree = CompactTree()
    tree.extend(LEAVES[:size])
    assert tree.root() == expected


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda case: case["file"])
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    arguments = (b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof_of(case))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*arguments, b64(case["root"]))
    else:
        verify_inclusion(*arguments, b64(case["root"]))


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda case: case["file"])
def test_consistency_vectors(case: dict[str, Any]) -> None:
    arguments = (case["size1"], case["size2"], proof_of(case), b64(case["root1"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*arguments, b64(case["root2"]))
    else:
        verify_consistency(*arguments, b64(case["root2"]))


def test_generated_proofs_are_the_reference_proofs() -> None:
    """Our proofs for the 8-leaf reference tree are byte for byte the vectors' happy paths."""
    happy = [case for case in VECTORS["inclusion"] if case["desc"] == "happy path"]
    for case in happy:
        if case["treeSize"] <= len(LEAVES):
            leaves = LEAVES[: case["treeSize"]]
            assert list(inclusion_proof(leaves, case["leafIdx"])) == proof_of(case)
    for case in VECTORS["consistency"]:
        if case["desc"] == "happy path" and 0 < case["size1"] < case["size2"] <= len(LEAVES):
            leaves = LEAVES[: case["size2"]]
            assert list(consistency_proof(leaves, case["size1"])) == proof_of(case)
    assert happy


# -- every bit flip is caught ---------------------------------------------------------

SMALL = range(1, 17)


def data(i: int) -> bytes:
    return f"record {i}".encode()


def flips(value: bytes) -> list[bytes]:
    return [
        value[:byte] + bytes([value[byte] ^ (1 << bit)]) + value[byte + 1 :]
        for byte in range(len(value))
        for bit in range(8)
    ]


def tampered_proofs(proof: tuple[bytes, ...]) -> list[list[bytes]]:
    return [
        [*proof[:position], flipped, *proof[position + 1 :]]
        for position, node in enumerate(proof)
        for flipped in flips(node)
    ]


@pytest.mark.parametrize("size", SMALL)
def test_every_bit_flip_of_a_leaf_or_inclusion_proof_is_detected(size: int) -> None:
    raw = [data(i) for i in range(size)]
    leaves = [leaf_hash(item) for item in raw]
    tree_root = root(leaves)
    rejected = 0
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        verify_inclusion(leaves[index], index, size, proof, tree_root)
        for flipped in flips(raw[index]):
            with pytest.raises(ProofError):
                verify_inclusion(leaf_hash(flipped), index, size, proof, tree_root)
            rejected += 1
        for tampered in tampered_proofs(proof):
            with pytest.raises(ProofError):
                verify_inclusion(leaves[index], index, size, tampered, tree_root)
            rejected += 1
        for flipped_root in flips(tree_root):
            with pytest.raises(ProofError):
                verify_inclusion(leaves[index], index, size, proof, flipped_root)
    assert rejected >= size * len(raw[0]) * 8


@pytest.mark.parametrize("size", SMALL)
def test_every_bit_flip_of_a_consistency_proof_is_detected(size: int) -> None:
    leaves = [leaf_hash(data(i)) for i in range(size)]
    new_root = root(leaves)
    for old_size in range(1, size):
        old_root = root(leaves[:old_size])
        proof = consistency_proof(leaves, old_size)
        verify_consistency(old_size, size, proof, old_root, new_root)
        for tampered in tampered_proofs(proof):
            with pytest.raises(ProofError):
                verify_consistency(old_size, size, tampered, old_root, new_root)
        for flipped in flips(old_root):
            with pytest.raises(ProofError):
                verify_consistency(old_size, size, proof, flipped, new_root)


@pytest.mark.parametrize("size", SMALL)
def test_proofs_one_hash_too_long_or_too_short_are_rejected(size: int) -> None:
    leaves = [leaf_hash(data(i)) for i in range(size)]
    tree_root = root(leaves)
    extra = hashlib.sha256(b"extra").digest()
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        for bad in ([*proof, extra], [extra, *proof], list(proof[:-1]), list(proof[1:])):
            if bad != list(proof):
                with pytest.raises(ProofError):
                    verify_inclusion(leaves[index], index, size, bad, tree_root)
    for old_size in range(1, size):
        proof = consistency_proof(leaves, old_size)
        old_root = root(leaves[:old_size])
        for bad in ([*proof, extra], [extra, *proof], list(proof[:-1]), list(proof[1:])):
            with pytest.raises(ProofError):
                verify_consistency(old_size, size, bad, old_root, tree_root)


def test_hashes_of_the_wrong_size_are_rejected() -> None:
    leaves = [leaf_hash(data(i)) for i in range(5)]
    proof = inclusion_proof(leaves, 2)
    with pytest.raises(ProofError, match="bytes"):
        verify_inclusion(leaves[2], 2, 5, [*proof[:-1], proof[-1] + b"\x00"], root(leaves))
    with pytest.raises(ProofError, match="bytes"):
        verify_inclusion(leaves[2][:31], 2, 5, proof, root(leaves))


def test_a_compact_tree_must_have_one_subtree_per_set_bit() -> None:
    with pytest.raises(ValueError, match="perfect subtrees"):
        CompactTree(5, [EMPTY_ROOT])
    tree = CompactTree(5, [EMPTY_ROOT, EMPTY_ROOT])
    assert tree.size == 5


# -- properties over random trees -----------------------------------------------------

sizes = st.integers(min_value=1, max_value=300)


@settings(max_examples=150, deadline=None)
@given(size=sizes, data=st.data())
def test_every_leaf_of_a_random_tree_has_a_verifying_proof_and_no_other(
    size: int, data: st.DataObject
) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree_root = root(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(leaves, index)
    assert len(proof) <= size.bit_length()
    verify_inclusion(leaves[index], index, size, proof, tree_root)
    other = data.draw(st.integers(0, size - 1))
    if other != index:
        with pytest.raises(ProofError):
            verify_inclusion(leaves[other], index, size, proof, tree_root)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], other, size, proof, tree_root)


@settings(max_examples=150, deadline=None)
@given(size=sizes, data=st.data())
def test_a_random_tree_is_consistent_with_each_prefix_and_not_with_a_rewrite(
    size: int, data: st.DataObject
) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    old_size = data.draw(st.integers(1, size))
    proof = consistency_proof(leaves, old_size)
    verify_consistency(old_size, size, proof, root(leaves[:old_size]), root(leaves))
    rewritten = data.draw(st.integers(0, old_size - 1))
    history = list(leaves)
    history[rewritten] = leaf_hash(b"rewritten")
    with pytest.raises(ProofError):
        verify_consistency(old_size, size, proof, root(history[:old_size]), root(leaves))
    with pytest.raises(ProofError):
        verify_consistency(
            old_size, size, consistency_proof(history, old_size), root(leaves[:old_size]),
            root(history),
        )  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=200))
def test_the_compact_tree_matches_the_recursive_definition(items: list[bytes]) -> None:
    def mth(leaves: list[bytes]) -> bytes:
        if not leaves:
            return EMPTY_ROOT
        if len(leaves) == 1:
            return leaves[0]
        k = 1 << ((len(leaves) - 1).bit_length() - 1)
        return node_hash(mth(leaves[:k]), mth(leaves[k:]))

    leaves = [leaf_hash(item) for item in items]
    tree = CompactTree()
    for count, leaf in enumerate(leaves, 1):
        tree.append(leaf)
        assert tree.size == count
    assert tree.root() == mth(leaves)
    restored = CompactTree(tree.size, list(tree.peaks))
    restored.append(leaf_hash(b"next"))
    assert restored.root() == mth([*leaves, leaf_hash(b"next")])


@pytest.mark.parametrize("new_size", range(1, 34))
def test_a_proof_from_a_saved_tree_state_is_the_proof_from_all_leaves(new_size: int) -> None:
    """The writer links checkpoints holding only the old tree's state and the new leaves."""
    leaves = [leaf_hash(data(i)) for i in range(new_size)]
    for old_size in range(1, new_size + 1):
        old = CompactTree()
        old.extend(leaves[:old_size])
        assert consistency_proof_from(old, leaves[old_size:]) == consistency_proof(leaves, old_size)


@pytest.mark.parametrize("size", range(1, 34))
def test_an_inclusion_proof_after_a_pruned_prefix_is_the_proof_from_all_leaves(size: int) -> None:
    """A record kept after pruning is proven from the pruned prefix's tree state alone."""
    leaves = [leaf_hash(data(i)) for i in range(size)]
    for pruned in range(size + 1):
        old = CompactTree()
        old.extend(leaves[:pruned])
        for index in range(pruned, size):
            assert inclusion_proof_from(old, leaves[pruned:], index) == inclusion_proof(
                leaves, index
            )
        if pruned:
            with pytest.raises(ValueError, match="is not among leaves"):
                inclusion_proof_from(old, leaves[pruned:], pruned - 1)
