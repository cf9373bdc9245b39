"""RFC 6962 / RFC 9162 Merkle tree hashing: roots, inclusion and consistency proofs.

What lets anyone check a writer's log with a public key only: the writer signs the root
of a Merkle tree over its records (see `checkpoint`), and these proofs show that one
record is in a signed tree, or that a later signed tree extends an earlier one.

Hashes are SHA-256 (RFC 6962 §2.1): a leaf is `SHA-256(0x00 || data)`, an inner node
`SHA-256(0x01 || left || right)`, the empty tree `SHA-256("")`. Functions that build
trees take leaf *hashes*, so callers decide once what a leaf's data is.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 and is strict, as the
transparency-dev/merkle reference is: a proof with a hash too many, too few, or of the
wrong size is rejected, never partly used. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"


class ProofError(ValueError):
    """A proof that does not prove what it claims; the message says why."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


@dataclass
class CompactTree:
    """A growing tree kept as the roots of its perfect subtrees, largest first.

    One root per set bit of `size` (the "right edge" / compact range [0, size)), so an
    append costs O(log n) hashes amortised O(1), and the whole state is O(log n) hashes:
    what a writer keeps in memory and saves to carry on after a restart.
    """

    size: int = 0
    peaks: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.peaks) != self.size.bit_count():
            raise ValueError(
                f"a tree of {self.size} leaves has {self.size.bit_count()} perfect subtrees, "
                f"not {len(self.peaks)}"
            )
        if any(len(peak) != HASH_SIZE for peak in self.peaks):
            raise ValueError(f"subtree hashes are {HASH_SIZE} bytes")

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash: merge equal-sized subtrees, as adding 1 carries bits."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf)}")
        merged, carry = leaf, self.size
        while carry & 1:
            merged = node_hash(self.peaks.pop(), merged)
            carry >>= 1
        self.peaks.append(merged)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        root = self.peaks[-1]
        for left in reversed(self.peaks[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> CompactTree:
        return CompactTree(self.size, list(self.peaks))


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 over leaf hashes."""
    tree = CompactTree()
    tree.extend(leaves)
    return tree.root()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaves: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """PATH(index, D[n]) of RFC 9162 §2.1.3.1: the audit path of leaf `index`."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)} leaves")
    return _inclusion_path(index, len(leaves), lambda start, end: root(leaves[start:end]))


def _inclusion_path(
    index: int, size: int, subtree_root: Callable[[int, int], bytes]
) -> tuple[bytes, ...]:
    """PATH(index, D[size]), asking `subtree_root(start, end)` for the nodes beside it."""
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_root(start + k, end))
            end = start + k
        else:
            path.append(subtree_root(start, start + k))
            start += k
    path.reverse()  # collected root-first, the proof goes leaf-first
    return tuple(path)


def _consistency_path(
    old_size: int, new_size: int, subtree_root: Callable[[int, int], bytes]
) -> tuple[bytes, ...]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1, asking `subtree_root(start, end)` for nodes.

    Every node it asks for is either a perfect subtree of the old tree (one of its
    `CompactTree` peaks) or lies wholly among the new leaves: what a writer holding the
    old tree state and the leaves added since can answer.
    """
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
    path: list[bytes] = []
    m, start, end, whole = old_size, 0, new_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(subtree_root(start + k, end))
            end = start + k
        else:
            path.append(subtree_root(start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:  # the old tree's own root is not a node the verifier already has
        path.append(subtree_root(start, end))
    path.reverse()
    return tuple(path)


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> tuple[bytes, ...]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1: the tree of `old_size` leaves is a prefix."""
    return _consistency_path(old_size, len(leaves), lambda start, end: root(leaves[start:end]))


def _extended(old: CompactTree, new_leaves: Sequence[bytes]) -> Callable[[int, int], bytes]:
    """`subtree_root(start, end)` of `old` extended by `new_leaves`, without old leaves.

    Answers for any node that is one of `old`'s perfect subtrees, lies wholly among the new
    leaves, or is made of such nodes (a node straddling the old size); ValueError for a node
    inside an old subtree, whose leaves are not known.
    """
    peaks: dict[tuple[int, int], bytes] = {}
    start = 0
    for bit, peak in zip(
        (1 << b for b in reversed(range(old.size.bit_length())) if old.size >> b & 1),
        old.peaks,
        strict=True,
    ):
        peaks[start, start + bit] = peak
        start += bit

    def subtree_root(start: int, end: int) -> bytes:
        if start >= old.size:
            return root(new_leaves[start - old.size : end - old.size])
        if (start, end) in peaks:
            return peaks[start, end]
        if end - start < 2:
            raise ValueError(f"leaf {start} is inside the old tree of {old.size} leaves")
        middle = start + _split(end - start)
        return node_hash(subtree_root(start, middle), subtree_root(middle, end))

    return subtree_root


def consistency_proof_from(old: CompactTree, new_leaves: Sequence[bytes]) -> tuple[bytes, ...]:
    """The consistency proof from the tree `old` to it extended by `new_leaves`.

    Needs no leaf of the old tree: a writer keeps the state of its last checkpoint and
    the leaves since, and links the next checkpoint to it.
    """
    return _consistency_path(old.size, old.size + len(new_leaves), _extended(old, new_leaves))


def inclusion_proof_from(
    old: CompactTree, new_leaves: Sequence[bytes], index: int
) -> tuple[bytes, ...]:
    """PATH(index, D[n]) of a leaf added after `old`, without `old`'s leaves.

    What proves a record kept after an older prefix of its log was pruned: the prefix is
    known only by its tree state (`old`); every node of the path is one of its perfect
    subtrees, made of them and new leaves, or made of new leaves alone.
    """
    size = old.size + len(new_leaves)
    if not old.size <= index < size:
        raise ValueError(f"leaf {index} is not among leaves {old.size}-{size - 1}")
    return _inclusion_path(index, size, _extended(old, new_leaves))


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    for position, node in enumerate(proof):
        if len(node) != HASH_SIZE:
            raise ProofError(f"{what} hash {position} is {len(node)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root the audit path leads to, or ProofError if it cannot be a path of `index`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"the leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    _check_hashes(proof, "inclusion proof")
    fn, sn, result = index, size - 1, leaf
    for node in proof:
        if sn == 0:
            raise ProofError("the inclusion proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            result = node_hash(node, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is missing hashes")
    return result


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise ProofError unless `proof` shows leaf `index` under `expected_root`."""
    if root_from_inclusion_proof(leaf, index, size, proof) != expected_root:
        raise ProofError(f"leaf {index} is not in the tree of {size} leaves with that root")


def verify_consistency(
    old_size: int,
    new_size: int,
    proof: Sequence[bytes],
    old_root: bytes,
    new_root: bytes,
) -> None:
    """Raise ProofError unless the tree `new_root` extends the tree `old_root`."""
    _check_hashes(proof, "consistency proof")
    if new_size < old_size:
        raise ProofError(f"a tree of {new_size} leaves cannot extend one of {old_size}")
    if old_size == 0:
        # Every tree extends the empty one: a proof from it proves nothing, so none is taken.
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if old_size == new_size:
        if proof:
            raise ProofError("trees of the same size need an empty consistency proof")
        if old_root != new_root:
            raise ProofError(f"two different trees of {old_size} leaves")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # the old tree is perfect: its root is a proof node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old, new = path[0], path[0]
    for node in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            old = node_hash(node, old)
            new = node_hash(node, new)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new = node_hash(new, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is missing hashes")
    if old != old_root:
        raise ProofError(f"the proof does not lead to the old root of {old_size} leaves")
    if new != new_root:
        raise ProofError(f"the proof does not lead to the new root of {new_size} leaves")
