"""What pruning records (`audit.pruned`) say: where each pruned writer's log now starts.

A pruning record is stored, durably, before anything it accounts for is deleted. For each
writer whose oldest records it accounts for it gives an `Anchor`: the first seq kept
(`resumeSeq`), the hash that record links to (`resumePrev`) and, where the pruner knew it,
the Merkle tree state of the pruned prefix (`tree`, a `tlog.tree_state`), from which the
records kept still prove against the writer's signed checkpoints (`tlog.LeafTree`,
`prove_record`). A forged tree gains nothing: the records kept must still reach the root
the writer signed.

File writers prune their own segments and say so in their own chain (the context's top
level is the record's own writer); `jitgate audit prune` on PostgreSQL drops partitions
holding every writer's records, so its record lists each writer under `writers`. Both
work out an anchor the same way (`pruned_prefix`): the records to prune must verify as a
chain from where the log starts now, and their leaves grow the pruned prefix's tree.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jitgate.audit.chain import PRUNED
from jitgate.audit.merkle import CompactTree
from jitgate.audit.tlog import tree_from_state, tree_state
from jitgate.audit.verify import Entry, Item, verify_chain


@dataclass(frozen=True)
class Anchor:
    """Where `writer`'s log starts after pruning, as a pruning record (`source`) says."""

    writer: str
    resume_seq: int
    resume_prev: str
    tree: CompactTree | None
    source: str

    def state(self) -> dict[str, Any]:
        """The anchor as a pruning record's `writers` entry."""
        entry: dict[str, Any] = {"resumeSeq": self.resume_seq, "resumePrev": self.resume_prev}
        if self.tree is not None:
            entry["tree"] = tree_state(self.tree)
        return entry


def _anchor(writer: str, entry: object, source: str) -> Anchor | None:
    if not isinstance(entry, Mapping):
        return None
    seq, prev = entry.get("resumeSeq"), entry.get("resumePrev")
    if type(seq) is not int or not isinstance(prev, str):
        return None
    try:
        tree = tree_from_state(entry["tree"]) if "tree" in entry else None
    except (ValueError, TypeError):
        tree = None  # the Merkle check then reads the kept records as a log from seq 1
    if tree is not None and tree.size != seq - 1:
        tree = None
    return Anchor(writer, seq, prev, tree, source)


def anchors_of(record: Mapping[str, Any]) -> list[Anchor]:
    """The anchors a stored pruning record gives ([] for any other record)."""
    if record.get("type") != PRUNED:
        return []
    context = record.get("context")
    if not isinstance(context, Mapping):
        return []
    source = f"pruning record {record.get('writer')}:{record.get('seq')}"
    found = []
    own = _anchor(str(record.get("writer")), context, source)
    if own is not None:
        found.append(own)
    writers = context.get("writers")
    if isinstance(writers, Mapping):
        for writer, entry in writers.items():
            anchor = _anchor(str(writer), entry, source)
            if anchor is not None:
                found.append(anchor)
    return found


def by_writer(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Anchor]]:
    """Every anchor the pruning records give, by writer."""
    found: dict[str, list[Anchor]] = {}
    for record in records:
        for anchor in anchors_of(record):
            found.setdefault(anchor.writer, []).append(anchor)
    return found


def start_tree(anchors: Iterable[Anchor], first_seq: int | None) -> CompactTree | None:
    """The pruned prefix's tree state for a log that now starts at `first_seq`, if known."""
    for anchor in anchors:
        if anchor.resume_seq == first_seq and anchor.tree is not None:
            return anchor.tree
    return None


def pruned_prefix(
    writer: str,
    items: Iterable[Item],
    last: int,
    prior: Anchor | None,
    key: bytes | None = None,
) -> Anchor:
    """Where `writer`'s log starts once its records up to seq `last` are pruned.

    `items` are its chain from where it starts now: seq 1, or where `prior` (the anchor
    accounting for that start) says. They must verify as a chain (with `key`, their MACs
    too) reaching `last`; their leaves grow the pruned prefix's tree, which stays unknown
    if `prior`'s was. ValueError naming the problem otherwise.
    """
    tree: CompactTree | None = CompactTree()
    if prior is not None:
        tree = prior.tree.copy() if prior.tree is not None else None

    def grow(seq: int, leaf: bytes | None) -> None:
        nonlocal tree
        if tree is not None and leaf is not None:
            tree.append(leaf)
        else:
            tree = None

    report = verify_chain(
        writer,
        _upto(items, last),
        key=key,
        anchors=[(prior.resume_seq, prior.resume_prev)] if prior else (),
        on_record=grow,
    )
    if report.problem is not None:
        raise ValueError(report.problem.message)
    if report.head is None or report.head.seq != last:
        raise ValueError(f"it does not reach seq {last}")
    return Anchor(writer, last + 1, report.head.hash, tree, "")


def _upto(items: Iterable[Item], last: int) -> Iterator[Item]:
    """The chain's items up to and including record `last`."""
    for item in items:
        yield item
        if isinstance(item, Entry) and item.record is not None and item.record.get("seq") == last:
            return
