"""C2SP checkpoints and tlog proofs: the spec's examples, strict parsing, offline proofs."""

from __future__ import annotations

import base64

import pytest

from jitgate.audit.checkpoint import (
    PROOF_HEADER,
    Checkpoint,
    CheckpointError,
    TlogProof,
    open_checkpoint,
    origin_of,
    verify_tlog_proof,
    writer_signer,
    writer_verifier,
)
from jitgate.audit.merkle import inclusion_proof, leaf_hash, root
from jitgate.audit.note import Signer

# c2sp.org/tlog-checkpoint's example (C2SP/C2SP tlog-checkpoint.md).
SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
DEPLOYMENT = Signer.generate("jitgate.example.com/audit")


def test_the_spec_example_parses_and_renders_back() -> None:
    checkpoint = Checkpoint.parse(SPEC_TEXT)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.text == SPEC_TEXT
    with_extension = Checkpoint.parse(SPEC_TEXT + "extension line\n")
    assert with_extension.extensions == ("extension line",)


@pytest.mark.parametrize(
    "text",
    [
        "example.com/log\n20852163\n",  # no root
        "example.com/log\n020852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n+1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n1 \nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n99999999999999999999\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/log\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  # unpadded
        "example.com/log\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=AAAA\n",  # 35 bytes
        "example.com/log\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",  # no final newline
        "example.com/log\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\nextension\n",
        "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # no origin
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text)


def test_a_writer_checkpoint_verifies_with_the_deployment_public_key_only() -> None:
    origin = origin_of(DEPLOYMENT.name, "webhook-0")
    assert origin == "jitgate.example.com/audit/webhook-0"
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    signed = Checkpoint(origin, 5, root(leaves)).sign(writer_signer(DEPLOYMENT, "webhook-0"))
    assert signed.decode().startswith(f"{origin}\n5\n")
    assert f"\n\n— {origin} " in signed.decode()
    public = writer_verifier(DEPLOYMENT.verifier, "webhook-0")
    assert open_checkpoint(signed, origin, public) == Checkpoint(origin, 5, root(leaves))


def test_a_checkpoint_of_another_writer_or_key_is_refused() -> None:
    origin = origin_of(DEPLOYMENT.name, "webhook-0")
    signed = Checkpoint(origin, 1, leaf_hash(b"x")).sign(writer_signer(DEPLOYMENT, "webhook-0"))
    other_writer = origin_of(DEPLOYMENT.name, "webhook-1")
    with pytest.raises(CheckpointError):
        open_checkpoint(signed, other_writer, writer_verifier(DEPLOYMENT.verifier, "webhook-1"))
    stranger = Signer.generate(DEPLOYMENT.name)
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(signed, origin, writer_verifier(stranger.verifier, "webhook-0"))
    # The writer's own origin, signed under another writer's name: refused too.
    forged = Checkpoint(origin, 1, leaf_hash(b"x")).text
    with pytest.raises(CheckpointError):
        Checkpoint.parse(forged).sign(writer_signer(DEPLOYMENT, "webhook-1"))


def proof_for(size: int, index: int, extra: bytes | None = None) -> tuple[TlogProof, bytes, str]:
    origin = origin_of(DEPLOYMENT.name, "operator")
    leaves = [leaf_hash(f"record {i}".encode()) for i in range(size)]
    signed = Checkpoint(origin, size, root(leaves)).sign(writer_signer(DEPLOYMENT, "operator"))
    return TlogProof(index, inclusion_proof(leaves, index), signed, extra), leaves[index], origin


@pytest.mark.parametrize(("size", "index"), [(1, 0), (2, 1), (7, 3), (64, 63), (100, 41)])
def test_a_tlog_proof_round_trips_and_proves_its_record_offline(size: int, index: int) -> None:
    proof, leaf, origin = proof_for(size, index, extra=b'{"seq":42}')
    data = proof.render()
    assert data.startswith(f"{PROOF_HEADER}\nextra eyJzZXEiOjQyfQ==\nindex {index}\n".encode())
    parsed = TlogProof.parse(data)
    assert parsed == proof
    verifier = writer_verifier(DEPLOYMENT.verifier, "operator")
    assert verify_tlog_proof(parsed, leaf, origin, verifier).size == size


def test_a_tlog_proof_of_another_record_or_index_is_refused() -> None:
    proof, leaf, origin = proof_for(10, 4)
    verifier = writer_verifier(DEPLOYMENT.verifier, "operator")
    with pytest.raises(CheckpointError, match="not proven"):
        verify_tlog_proof(proof, leaf_hash(b"record 5"), origin, verifier)
    moved = TlogProof(5, proof.path, proof.checkpoint)
    with pytest.raises(CheckpointError, match="not proven"):
        verify_tlog_proof(moved, leaf, origin, verifier)
    longer = TlogProof(4, (*proof.path, leaf), proof.checkpoint)
    with pytest.raises(CheckpointError, match="not proven"):
        verify_tlog_proof(longer, leaf, origin, verifier)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda data: data.replace(PROOF_HEADER.encode(), b"c2sp.org/tlog-proof@v2"),
        lambda data: data.replace(b"index 4", b"index 04"),
        lambda data: data.replace(b"index 4\n", b""),
        lambda data: data.replace(b"index 4\n", b"index 4\nnot-base64!\n"),
        lambda data: data.replace(b"index 4\n", b"index 4\nAAAA\n"),  # a 3-byte "hash"
        lambda data: data.replace(b"index 4\n", b"extra \nindex 4\n"),
        lambda data: data.split(b"\n\n", 1)[0],
        lambda data: data.replace(b"\n\n", b"\n", 1),
    ],
)
def test_malformed_tlog_proofs_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    proof, _, _ = proof_for(10, 4)
    with pytest.raises(CheckpointError):
        TlogProof.parse(mangle(proof.render()))
