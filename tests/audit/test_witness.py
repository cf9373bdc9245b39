"""`jitgate audit witness` (C2SP tlog-witness add-checkpoint) and the cosignature policy of
`verify --witness-key`: what a holder of both the HMAC key and the writers' signing key can
no longer do. Each attack of issue 13 is one test, and `verify` names each.

The witness runs as it would in production, an HTTP server on 127.0.0.1 with its own key
and state directory; the attacker uses jitgate's own code with the stolen keys.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.auditfiles import stored_records

from jitgate.audit import filelayout as layout
from jitgate.audit import open_audit_writer
from jitgate.audit.chain import ChainHead, link
from jitgate.audit.checkpoint import Checkpoint, writer_signer
from jitgate.audit.checkpointer import timestamped
from jitgate.audit.cosignature import CosignatureVerifier, Cosigner, cosignatures
from jitgate.audit.errors import AuditConfigError
from jitgate.audit.filecheckpoints import read_checkpoint
from jitgate.audit.merkle import CompactTree, consistency_proof, leaf_hash
from jitgate.audit.note import Note, Signer, parse_note
from jitgate.audit.tlog import CheckpointLink, encode_tree
from jitgate.audit.witness import Submission, Witness
from jitgate.audit.witnessserver import WitnessServer, WitnessStore
from jitgate.core.clock import ManualClock

from .conftest import KEY, START, sample_event
from .test_file_pruning import pruned_log
from .test_tlog_writer import DEPLOYMENT

ORIGIN = "jitgate.example.com/audit/w0"


@dataclass(frozen=True)
class Running:
    url: str
    key: Cosigner
    state: Path
    lag: list[float]  # seconds the witness's clock is behind: cosignatures made back then


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[Running]:
    """A witness of the deployment's logs, on its own key and state directory."""
    key = Cosigner.generate("witness.example.org/w1")
    state = tmp_path / "witness-state"
    lag = [0.0]
    server = WitnessServer(
        ("127.0.0.1", 0),
        Witness(key, [DEPLOYMENT.verifier]),
        WitnessStore(state),
        now=lambda: time.time() - lag[0],
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Running(server.url, key, state, lag)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def keys(tmp_path: Path, witness: Running) -> dict[str, Path]:
    files = {"verifier": tmp_path / "checkpoint.pub", "witness": tmp_path / "witness.pub"}
    files["verifier"].write_text(DEPLOYMENT.verifier.vkey + "\n")
    files["witness"].write_text(witness.key.verifier.vkey + "\n")
    return files


def post(url: str, body: bytes) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url + "/add-checkpoint", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers["Content-Type"]


async def write(
    log_dir: Path, count: int, *, first: int = 0, witnesses: tuple[str, ...] = ()
) -> None:
    async with open_audit_writer(
        f"file://{log_dir}",
        writer_id="w0",
        key=KEY,
        clock=ManualClock(START),
        maintenance_interval=None,
        checkpoint_key=DEPLOYMENT,
        witnesses=witnesses,
    ) as writer:
        for i in range(count):
            await writer.append(sample_event(first + i))


def verify(cli: Any, log_dir: Path, keys: dict[str, Path], *extra: str) -> Any:
    return cli(
        "verify",
        "--audit",
        f"file://{log_dir}",
        "--key-file",
        str(keys["hmac"]) if "hmac" in keys else "/dev/null",
        "--verifier-key",
        keys["verifier"],
        "--witness-key",
        keys["witness"],
        *extra,
    )


@pytest.fixture
def all_keys(keys: dict[str, Path], key_file: Path) -> dict[str, Path]:
    return {**keys, "hmac": key_file}


# -- what an attacker holding the HMAC key and the checkpoint key can write ------------


def forge(log_dir: Path, bodies: list[dict[str, Any]]) -> tuple[bytes, list[bytes]]:
    """Re-chain, re-MAC and re-sign `bodies` as writer w0's whole log, history and all."""
    writer_dir = log_dir / "w0"
    for segment in writer_dir.glob("*.jsonl"):
        segment.unlink()
    head: ChainHead | None = None
    lines = []
    for body in bodies:
        linked = link(body, writer="w0", head=head, key=KEY)
        lines.append(linked.line)
        head = linked.head
    assert head is not None
    (writer_dir / layout.segment_name(1)).write_bytes(b"".join(lines))
    (writer_dir / layout.HEAD_FILE).write_bytes(
        layout.encode_head("w0", head.seq, head.hash, bodies[-1]["time"])
    )
    leaves = [leaf_hash(line.removesuffix(b"\n")) for line in lines]
    tree = CompactTree()
    tree.extend(leaves)
    signed = timestamped(
        Checkpoint(ORIGIN, tree.size, tree.root()), writer_signer(DEPLOYMENT, "w0"), START
    )
    (writer_dir / layout.HISTORY_FILE).write_bytes(CheckpointLink(signed, (), tree).encode())
    (writer_dir / layout.CHECKPOINT_FILE).write_bytes(signed)
    (writer_dir / layout.TREE_FILE).write_bytes(encode_tree(tree))
    return signed, leaves


def bodies_of(log_dir: Path) -> list[dict[str, Any]]:
    chained = ("v", "writer", "seq", "prev", "hash", "mac")
    return [{k: v for k, v in r.items() if k not in chained} for r in stored_records(log_dir)]


# -- the protocol ---------------------------------------------------------------------


async def test_a_writer_gets_its_checkpoints_cosigned_and_verify_counts_them(
    tmp_path: Path, witness: Running, all_keys: dict[str, Path], cli: Any
) -> None:
    log_dir = tmp_path / "audit"
    await write(log_dir, 30, witnesses=(witness.url,))
    await write(log_dir, 20, first=30, witnesses=(witness.url,))  # restarted: learns its size
    signed = read_checkpoint(log_dir / "w0")
    assert signed is not None
    assert witness.key.verifier.vkey in cosignatures(signed, [witness.key.verifier])
    assert (witness.state / "jitgate.example.com%2Faudit%2Fw0.checkpoint").exists()

    result = verify(cli, log_dir, all_keys)
    assert result.code == 0, result.out + result.err
    assert verify(cli, log_dir, all_keys, "--max-age", "10m").code == 0
    assert any(
        line.startswith(
            "ok      w0: the latest checkpoint (50 records) is cosigned by 1 witness(es) "
            "(witness.example.org/w1 at "
        )
        for line in result.out.splitlines()
    ), result.out
    assert result.out.splitlines()[-1].startswith(
        "The audit log is intact: 1 writer(s), 50 records, every one under its signed "
        "checkpoint cosigned by at least 1 witness(es)"
    )


async def test_a_file_log_pruned_by_retention_still_meets_the_cosignature_policy(
    tmp_path: Path, witness: Running, all_keys: dict[str, Path], cli: Any
) -> None:
    log_dir = tmp_path / "audit"
    await pruned_log(log_dir, witnesses=(witness.url,))
    assert not (log_dir / "w0" / layout.segment_name(1)).exists()

    result = verify(cli, log_dir, all_keys)

    assert result.code == 0, result.out + result.err
    assert "ok      w0: the latest checkpoint (" in result.out
    assert result.out.splitlines()[-1].startswith("The audit log is intact: 1 writer(s), ")
    assert "cosigned by at least 1 witness(es)" in result.out.splitlines()[-1]


async def test_the_witness_answers_as_the_spec_says(tmp_path: Path, witness: Running) -> None:
    log_dir = tmp_path / "audit"
    await write(log_dir, 8, witnesses=(witness.url,))
    leaves = [
        leaf_hash(line)
        for line in (log_dir / "w0" / "00000000000000000001.jsonl").read_bytes().splitlines()
    ]
    signer = writer_signer(DEPLOYMENT, "w0")

    def signed_at_size(size: int, key: Signer = signer) -> bytes:
        tree = CompactTree()
        tree.extend(leaves[:size])
        return Checkpoint(key.name, size, tree.root()).sign(key)

    more = [*leaves, leaf_hash(b"record nine")]
    tree = CompactTree()
    tree.extend(more)
    nine = Checkpoint(ORIGIN, 9, tree.root()).sign(signer)

    status, body, kind = post(witness.url, Submission(0, (), nine).render())
    assert (status, body, kind) == (409, b"8\n", "text/x.tlog.size")
    status, body, _ = post(witness.url, Submission(8, (), nine).render())
    assert status == 422
    proof = consistency_proof(more, 8)
    wrong = (proof[0][::-1], *proof[1:])
    assert post(witness.url, Submission(8, wrong, nine).render())[0] == 422
    assert post(witness.url, Submission(9, (), nine).render())[0] == 409
    assert post(witness.url, Submission(10, (), nine).render())[0] == 400
    stranger = Signer.generate(ORIGIN)
    assert post(witness.url, Submission(8, proof, signed_at_size(8, stranger)).render())[0] == 403
    other = Signer.generate("elsewhere.example/audit")
    other_w0 = writer_signer(other, "w0")
    assert post(witness.url, Submission(0, (), signed_at_size(1, other_w0)).render())[0] == 404
    assert post(witness.url, b"old 01\n\n" + nine)[0] == 400
    assert post(witness.url, b"nonsense")[0] == 400
    # Same size, another root: a fork at the witness's own size.
    forked = Checkpoint(ORIGIN, 8, leaf_hash(b"other")).sign(signer)
    assert post(witness.url, Submission(8, (), forked).render())[:2] == (409, b"8\n")

    status, body, _ = post(witness.url, Submission(8, proof, nine).render())
    assert status == 200
    note = nine + body
    text = parse_note(note).text
    assert text.endswith("\n9\n" + text.split("\n")[2] + "\n")
    assert witness.key.verifier.vkey in cosignatures(note, [witness.key.verifier])
    # The same tree again (a writer re-signing while idle) is cosigned again.
    assert post(witness.url, Submission(9, (), nine).render())[0] == 200


def test_keygen_makes_a_witness_key_and_the_witness_refuses_bad_flags(
    cli: Any, tmp_path: Path
) -> None:
    made = cli("keygen", "witness.example.org/w1", "--witness", "--out", tmp_path / "w.key")
    assert made.code == 0, made.err
    public = CosignatureVerifier.parse(made.out)
    assert Cosigner.parse((tmp_path / "w.key").read_text()).verifier == public
    # A witness key is not a checkpoint key, and the other way round.
    plain = cli("keygen", "jitgate.example.com/prod", "--out", tmp_path / "c.key")
    (tmp_path / "c.pub").write_text(plain.out)
    refused = cli(
        "witness", "--key", tmp_path / "c.key", "--log-key", tmp_path / "c.pub",
        "--state", tmp_path / "state",
    )  # fmt: skip
    assert refused.code == 2
    assert "holds no witness key" in refused.err
    policy = cli(
        "verify", "--audit", f"file://{tmp_path}/audit", "--witness-key", tmp_path / "c.pub"
    )
    assert policy.code == 2


# -- the attacks: an attacker holding the HMAC key and the checkpoint signing key ------


async def test_attack_a_record_rewritten_and_everything_re_signed_is_named_by_verify(
    tmp_path: Path, witness: Running, all_keys: dict[str, Path], cli: Any
) -> None:
    log_dir = tmp_path / "audit"
    await write(log_dir, 100, witnesses=(witness.url,))
    genuine = read_checkpoint(log_dir / "w0")
    assert genuine is not None
    bodies = bodies_of(log_dir)
    bodies[6]["reason"] = "nothing to see here"
    forged, _ = forge(log_dir, bodies)

    # The chain, the MACs and the writer's signatures all check out again...
    assert cli("verify", "--audit", f"file://{log_dir}", "--key-file", all_keys["hmac"]).code == 0
    public = cli("verify", "--audit", f"file://{log_dir}", "--verifier-key", all_keys["verifier"])
    assert public.code == 0, public.out
    # ...but the witness will not cosign the rewritten tree, from its size or any other.
    assert post(witness.url, Submission(100, (), forged).render())[:2] == (409, b"100\n")
    assert post(witness.url, Submission(0, (), forged).render())[:2] == (409, b"100\n")
    # Nor do the genuine cosignatures carry over to it.
    cosigned = parse_note(genuine).signatures
    (log_dir / "w0" / "CHECKPOINT").write_bytes(Note(parse_note(forged).text, cosigned).render())
    result = verify(cli, log_dir, all_keys)
    assert result.code == 1
    assert "FAILED  w0: the latest checkpoint's cosignatures: invalid cosignature by " in result.out
    (log_dir / "w0" / "CHECKPOINT").write_bytes(forged)
    result = verify(cli, log_dir, all_keys)
    assert result.code == 1
    assert (
        "FAILED  w0: the latest checkpoint (100 records) has 0 of the 1 witness cosignature(s) "
        "the policy needs: a history no witness cosigned (rewritten, cut or forked)"
    ) in result.out.splitlines()


async def test_attack_the_last_50_records_and_head_deleted_is_named_by_verify(
    tmp_path: Path, witness: Running, all_keys: dict[str, Path], cli: Any
) -> None:
    log_dir = tmp_path / "audit"
    await write(log_dir, 100, witnesses=(witness.url,))
    forged, _ = forge(log_dir, bodies_of(log_dir)[:50])
    (log_dir / "w0" / "HEAD").unlink()

    assert cli("verify", "--audit", f"file://{log_dir}", "--key-file", all_keys["hmac"]).code == 0
    # The witness has seen 100 records: a tree of 50 is no extension of it.
    assert post(witness.url, Submission(0, (), forged).render())[:2] == (409, b"100\n")
    assert post(witness.url, Submission(100, (), forged).render())[0] == 400
    result = verify(cli, log_dir, all_keys)
    assert result.code == 1
    assert (
        "FAILED  w0: the latest checkpoint (50 records) has 0 of the 1 witness cosignature(s) "
        "the policy needs: a history no witness cosigned (rewritten, cut or forked)"
    ) in result.out.splitlines()


async def test_attack_two_histories_for_two_verifiers_is_named_by_verify(
    tmp_path: Path, witness: Running, all_keys: dict[str, Path], cli: Any
) -> None:
    """A fork: from one log of 100 records the attacker grows two different logs of 110,
    with jitgate's own writer and the stolen keys, one for each auditor."""
    log_dir = tmp_path / "audit"
    await write(log_dir, 100, witnesses=(witness.url,))
    first, second = tmp_path / "fork-a", tmp_path / "fork-b"
    shutil.copytree(log_dir, first)
    shutil.copytree(log_dir, second)
    await write(first, 10, first=100, witnesses=(witness.url,))
    await write(second, 10, first=200, witnesses=(witness.url,))  # refused by the witness

    shown_first = verify(cli, first, all_keys)
    assert shown_first.code == 0, shown_first.out
    shown_second = verify(cli, second, all_keys)
    assert shown_second.code == 1
    assert (
        "FAILED  w0: the latest checkpoint (110 records) has 0 of the 1 witness cosignature(s) "
        "the policy needs: a history no witness cosigned (rewritten, cut or forked)"
    ) in shown_second.out.splitlines()
    # Its checkpoint, sent to the witness by hand from any size, is refused too.
    signed = read_checkpoint(second / "w0")
    assert signed is not None
    assert len(stored_records(second)) == 110
    assert post(witness.url, Submission(100, (), signed).render())[:2] == (409, b"110\n")
    assert post(witness.url, Submission(110, (), signed).render())[:2] == (409, b"110\n")


async def test_a_witness_away_costs_a_warning_not_a_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_dir = tmp_path / "audit"
    await write(log_dir, 3, witnesses=("http://127.0.0.1:9",))  # nothing listens there
    assert "Witness http://127.0.0.1:9 did not cosign" in caplog.text
    assert len(stored_records(log_dir)) == 3
    assert read_checkpoint(log_dir / "w0") is not None


def test_a_writer_needs_a_checkpoint_key_and_an_http_url_for_witnesses() -> None:
    with pytest.raises(AuditConfigError, match="need a checkpoint key"):
        open_audit_writer("file:///tmp/x", writer_id="w0", witnesses=("http://127.0.0.1:1",))
    with pytest.raises(AuditConfigError, match="http:// or https:// URL"):
        open_audit_writer(
            "file:///tmp/x", writer_id="w0", checkpoint_key=DEPLOYMENT, witnesses=("ftp://x",)
        )


async def test_jitgate_audit_witness_runs_as_a_process(tmp_path: Path, cli: Any) -> None:
    """The command an operator runs: keys from files, a state directory, an HTTP port."""
    made = cli("keygen", "witness.example.org/w9", "--witness", "--out", tmp_path / "w.key")
    log_key = tmp_path / "checkpoint.pub"
    log_key.write_text(DEPLOYMENT.verifier.vkey + "\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jitgate.cli.jitgate", "audit", "witness",
        "--key", str(tmp_path / "w.key"), "--log-key", str(log_key),
        "--state", str(tmp_path / "state"), "--listen", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    started = b""
    try:
        url = f"http://127.0.0.1:{port}"
        async with asyncio.timeout(60):  # it says so once it listens
            while b" cosigning the logs of " not in started:
                line = await process.stdout.readline()
                assert line, f"jitgate audit witness exited: {started.decode()}"
                started += line
        log_dir = tmp_path / "audit"
        await write(log_dir, 5, witnesses=(url,))
        signed = read_checkpoint(log_dir / "w0")
        assert signed is not None
        public = CosignatureVerifier.parse(made.out)
        assert public.vkey in cosignatures(signed, [public])
    finally:
        process.terminate()
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert (
        b"Witness witness.example.org/w9 cosigning the logs of jitgate.example.com/audit"
        in started + output
    )


async def test_attack_a_log_cut_back_to_an_older_cosigned_checkpoint_is_named_with_max_age(
    tmp_path: Path, witness: Running, all_keys: dict[str, Path], cli: Any
) -> None:
    """The attacker kept the files of an hour ago (50 records, cosigned then) and puts them
    back over a log of 100: every signature is genuine, only the cosignature's age tells."""
    log_dir = tmp_path / "audit"
    witness.lag[0] = 3600.0
    await write(log_dir, 50, witnesses=(witness.url,))
    kept = {
        name: (log_dir / "w0" / name).read_bytes() for name in ("CHECKPOINT", "CHECKPOINTS", "TREE")
    }
    segment = next((log_dir / "w0").glob("*.jsonl"))
    first_50 = segment.read_bytes()
    witness.lag[0] = 0.0
    await write(log_dir, 50, first=50, witnesses=(witness.url,))

    segment.write_bytes(first_50)
    (log_dir / "w0" / "HEAD").unlink()
    for name, data in kept.items():
        (log_dir / "w0" / name).write_bytes(data)
    assert verify(cli, log_dir, all_keys).code == 0  # every signature holds
    result = verify(cli, log_dir, all_keys, "--max-age", "10m")
    assert result.code == 1
    assert any(
        line.startswith("FAILED  w0: the latest checkpoint (50 records) was last cosigned by 1 ")
        and line.endswith("longer ago than --max-age: a log cut back to an older checkpoint, "
                          "or writers that stopped")
        for line in result.out.splitlines()
    ), result.out  # fmt: skip
