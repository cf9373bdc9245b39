"""Webhook replicas witness one another (`--witness-key`): each serves C2SP tlog-witness
add-checkpoint for its peers' logs with its own key and state, each submits its checkpoints
to its peers, and `jitgate audit verify --witness-key` accepts their cosignatures. A holder of
one writer's keys who rewrites its log gets no peer cosignature, and verify names it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from jitgate.webhook.routers.witness import peer_witness
from jitgate.webhook.server import RunningWebhook, audit_opener, running
from support.clocks import ManualSleep

from jitgate.audit import filelayout as layout
from jitgate.audit.chain import ChainHead, link
from jitgate.audit.checkpoint import Checkpoint, origin_of, writer_signer
from jitgate.audit.checkpointer import timestamped
from jitgate.audit.cosignature import Cosigner
from jitgate.audit.merkle import CompactTree, leaf_hash
from jitgate.audit.note import Signer, parse_note
from jitgate.audit.tlog import CheckpointLink, encode_tree
from jitgate.audit.witness import Submission
from jitgate.audit.witnessclient import other_witnesses
from jitgate.audit.witnessserver import WitnessStore, add_checkpoint
from jitgate.cli.jitgate.main import main

from .conftest import FAST_BACKOFF

DEPLOYMENT = Signer.generate("jitgate.example.com/audit")
PEERS = Cosigner.generate("peers.jitgate.example.com")
REPLICAS = ("webhook-0", "webhook-1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    files = {
        "checkpoint": tmp_path / "checkpoint.key",
        "verifier": tmp_path / "checkpoint.pub",
        "witness": tmp_path / "witness.key",
        "peers": tmp_path / "witness.pub",
    }
    files["checkpoint"].write_text(DEPLOYMENT.skey + "\n")
    files["verifier"].write_text(DEPLOYMENT.verifier.vkey + "\n")
    files["witness"].write_text(PEERS.skey + "\n")
    files["peers"].write_text(PEERS.verifier.vkey + "\n")
    return files


@pytest.fixture
def polls() -> dict[str, ManualSleep]:
    """Each replica's checkpointer sleep: it polls when the test ticks it."""
    return {writer: ManualSleep() for writer in REPLICAS}


@pytest.fixture
def start(
    cluster: Any,
    webhook_config: Any,
    clock: Any,
    api_client: Any,
    pki: Any,
    keys: dict[str, Path],
    tmp_path: Path,
    polls: dict[str, ManualSleep],
) -> Any:
    """Starts two replicas on one audit directory, each witnessing the other."""
    return lambda: _replicas(webhook_config, clock, api_client, pki, keys, tmp_path, polls)


@asynccontextmanager
async def _replicas(
    webhook_config: Any,
    clock: Any,
    api_client: Any,
    pki: Any,
    keys: dict[str, Path],
    tmp_path: Path,
    polls: dict[str, ManualSleep],
) -> AsyncIterator[list[RunningWebhook]]:
    """`polls[writer]` is the sleep of that replica's checkpointer: it polls at each tick."""
    ports = [free_port() for _ in REPLICAS]
    peers = tuple(f"https://127.0.0.1:{port}/witness" for port in ports)
    async with AsyncExitStack() as stack:
        running_ = []
        for index, writer in enumerate(REPLICAS):
            config = dataclasses.replace(
                webhook_config,
                port=ports[index],
                writer_id=writer,
                checkpoint_key_file=keys["checkpoint"],
                witnesses=tuple(url for url in peers if url != peers[index]),
                witness_ca=pki.ca_file,
                witness_key_file=keys["witness"],
                # As the chart keeps it, on the replica's audit volume: verify ignores it.
                witness_state=(
                    webhook_config_dir(webhook_config) / ".witness"
                    if index == 0
                    else tmp_path / f"witness-{writer}"
                ),
            )
            audit = audit_opener(config, clock, checkpoint_sleep=polls[writer])
            handle = await stack.enter_async_context(
                running(
                    config, clock=clock, api_client=api_client, backoff=FAST_BACKOFF, audit=audit
                )
            )
            running_.append(handle)
        for handle in running_:
            assert await asyncio.to_thread(handle.wait_synced, 10)
        yield running_


def webhook_config_dir(config: Any) -> Path:
    return Path(config.audit_url.removeprefix("file://"))


def cosigned_sizes(audit_dir: Path) -> dict[str, int]:
    """The size of each writer's latest checkpoint, if its peers' key cosigned it."""
    sizes = {}
    for writer in REPLICAS:
        try:
            note = parse_note((audit_dir / writer / layout.CHECKPOINT_FILE).read_bytes())
        except FileNotFoundError:
            continue
        if any(signature.name == PEERS.name for signature in note.signatures):
            sizes[writer] = Checkpoint.parse(note.text).size
    return sizes


async def until_cosigned(
    audit_dir: Path, clock: Any, polls: dict[str, ManualSleep]
) -> dict[str, int]:
    """Move the writers' clock past their checkpoint interval and let each checkpointer poll
    once, until each one's latest checkpoint covers all its records and carries a peer's
    cosignature (bounded)."""
    for _ in range(10):
        sizes = {writer: len(records(audit_dir, writer)) for writer in REPLICAS}
        if cosigned_sizes(audit_dir) == sizes:
            return sizes
        clock.advance(dt.timedelta(seconds=2))
        for writer in REPLICAS:
            await polls[writer].tick()  # signed, stored and submitted to its peer
    raise AssertionError(f"never cosigned: {cosigned_sizes(audit_dir)}, wanted {sizes}")


def verify(audit_dir: Path, keys: dict[str, Path], capsys: Any) -> tuple[int, str]:
    capsys.readouterr()
    code = main(
        [
            "audit",
            "verify",
            "--audit",
            f"file://{audit_dir}",
            "--verifier-key",
            str(keys["verifier"]),
            "--witness-key",
            str(keys["peers"]),
            "--min-cosignatures",
            "1",
        ]
    )
    return code, capsys.readouterr().out


def records(audit_dir: Path, writer: str) -> list[dict[str, Any]]:
    segments, _ = layout.list_segments(audit_dir / writer)
    return [json.loads(line) for s in segments for line in s.path.read_bytes().splitlines()]


async def write_denials(replicas: list[RunningWebhook], pki: Any, reviews: Any) -> None:
    for handle in replicas:
        async with httpx.AsyncClient(base_url=handle.url, verify=pki.client_context()) as http:
            for _ in range(3):
                response = await http.post("/validate", json=reviews.exec())
                assert response.json()["response"]["allowed"] is False


async def test_two_replicas_cosign_each_others_checkpoints_and_verify_accepts_them(
    start: Any,
    audit_dir: Path,
    clock: Any,
    keys: dict[str, Path],
    pki: Any,
    reviews: Any,
    capsys: Any,
    polls: dict[str, ManualSleep],
) -> None:
    async with start() as replicas:
        await write_denials(replicas, pki, reviews)
        sizes = await until_cosigned(audit_dir, clock, polls)
        code, out = verify(audit_dir, keys, capsys)
        assert code == 0, out
        assert "cosigned by at least 1 witness(es)" in out

        # A replica never witnesses its own log.
        own = (audit_dir / "webhook-0" / layout.CHECKPOINT_FILE).read_bytes()
        async with httpx.AsyncClient(base_url=replicas[0].url, verify=pki.client_context()) as h:
            response = await h.post(
                "/witness/add-checkpoint", content=Submission(sizes["webhook-0"], (), own).render()
            )
    assert response.status_code == 404
    assert "is this witness's own log" in response.text


def forge(audit_dir: Path, writer: str, bodies: list[dict[str, Any]]) -> bytes:
    """What a holder of `writer`'s keys and volume can do: re-chain `bodies` as its whole log
    and re-sign its checkpoint and history with the deployment's key."""
    directory = audit_dir / writer
    for segment in directory.glob("*.jsonl"):
        segment.unlink()
    head: ChainHead | None = None
    lines = []
    for body in bodies:
        linked = link(body, writer=writer, head=head, key=None)
        lines.append(linked.line)
        head = linked.head
    assert head is not None
    (directory / layout.segment_name(1)).write_bytes(b"".join(lines))
    (directory / layout.HEAD_FILE).write_bytes(
        layout.encode_head(writer, head.seq, head.hash, bodies[-1]["time"])
    )
    tree = CompactTree()
    tree.extend(leaf_hash(line.removesuffix(b"\n")) for line in lines)
    origin = origin_of(DEPLOYMENT.name, writer)
    signed = timestamped(
        Checkpoint(origin, tree.size, tree.root()),
        writer_signer(DEPLOYMENT, writer),
        dt.datetime.now(dt.UTC),
    )
    (directory / layout.HISTORY_FILE).write_bytes(CheckpointLink(signed, (), tree).encode())
    (directory / layout.CHECKPOINT_FILE).write_bytes(signed)
    (directory / layout.TREE_FILE).write_bytes(encode_tree(tree))
    return signed


async def test_a_key_holder_rewriting_one_replica_is_named_by_its_peers_cosignatures(
    start: Any,
    webhook_config: Any,
    clock: Any,
    pki: Any,
    keys: dict[str, Path],
    tmp_path: Path,
    audit_dir: Path,
    reviews: Any,
    capsys: Any,
    polls: dict[str, ManualSleep],
) -> None:
    async with start() as running_:
        await write_denials(running_, pki, reviews)
        sizes = await until_cosigned(audit_dir, clock, polls)
    assert verify(audit_dir, keys, capsys)[0] == 0

    chained = ("v", "writer", "seq", "prev", "hash", "mac")
    stored = records(audit_dir, "webhook-0")
    bodies = [{k: v for k, v in r.items() if k not in chained} for r in stored]
    bodies[-1]["reason"] = "nothing to see here"
    forged = forge(audit_dir, "webhook-0", bodies)

    code, out = verify(audit_dir, keys, capsys)
    assert code == 1
    lines = out.splitlines()
    assert (
        f"FAILED  webhook-0: the latest checkpoint ({sizes['webhook-0']} records) has 0 of the "
        "1 witness cosignature(s) the policy needs: a history no witness cosigned "
        "(rewritten, cut or forked)"
    ) in lines
    assert not any(line.startswith("FAILED  webhook-1") for line in lines)
    # The peer's state holds the checkpoint it cosigned, which the rewrite disagrees with: it
    # refuses to cosign the rewritten tree of the same size.
    peer = WitnessStore(tmp_path / "witness-webhook-1")
    origin = origin_of(DEPLOYMENT.name, "webhook-0")
    cosigned = Checkpoint.parse(parse_note(peer.latest(origin) or b"").text)
    rewritten = Checkpoint.parse(parse_note(forged).text)
    size = sizes["webhook-0"]
    assert (cosigned.size, rewritten.size) == (size, size) and cosigned.root != rewritten.root
    config = dataclasses.replace(
        webhook_config,
        writer_id="webhook-1",
        checkpoint_key_file=keys["checkpoint"],
        witness_key_file=keys["witness"],
        witness_state=tmp_path / "witness-webhook-1",
    )
    witnessing = peer_witness(config)
    assert witnessing is not None
    answer = add_checkpoint(witnessing.witness, peer, Submission(size, (), forged).render())
    assert (answer.status, answer.body) == (409, f"{size}\n".encode())


def test_every_replica_gets_one_list_of_peers_and_skips_itself() -> None:
    peers = [
        "https://jitgate-webhook-0.jitgate.svc:8443/witness",
        "https://jitgate-webhook-1.jitgate.svc:8443/witness",
        "https://witness.example.org/",
    ]
    assert other_witnesses(peers, "jitgate-webhook-1") == [peers[0], peers[2]]
    assert other_witnesses(peers, "jitgate-operator-0") == peers
