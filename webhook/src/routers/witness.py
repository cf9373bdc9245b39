"""`POST /witness/add-checkpoint`: this replica as a C2SP tlog-witness of its peers' logs.

With `--witness-key`, every webhook replica cosigns the checkpoints of the other writers of
its deployment (the other replicas and the operator, which submit to it with `--witness`),
with its own key and its own state (`--witness-state`), exactly as `jitgate audit witness`
does: the same decisions (`jitgate.audit.witness`) and the same storage
(`jitgate.audit.witnessserver`). A replica never cosigns its own log. So a writer's log
rewritten, cut or forked by whoever holds its keys and its volume, but not a peer's witness
key and state, gets no cosignature, and `jitgate audit verify --witness-key` names it.

The route is not an admission path: `--client-ca` does not guard it (peers present no API
server certificate), and it needs none, as every statement in it is signed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from jitgate.webhook.config import WebhookConfig

from jitgate.audit.checkpoint import origin_of
from jitgate.audit.keys import load_checkpoint_key, load_witness_key, parse_verifier_key
from jitgate.audit.witness import Witness
from jitgate.audit.witnessserver import MAX_BODY, WitnessStore, add_checkpoint

PATH = "/witness/add-checkpoint"

router = APIRouter(tags=["witness"])


@dataclass(frozen=True)
class PeerWitness:
    witness: Witness
    store: WitnessStore


def peer_witness(config: WebhookConfig) -> PeerWitness | None:
    """The witness `config` asks for, if any (AuditConfigError for an unreadable key)."""
    if config.witness_key_file is None or config.witness_state is None:
        return None
    logs = [parse_verifier_key(path.read_text()) for path in config.witness_log_keys]
    own = None
    if config.checkpoint_key_file is not None:
        deployment = load_checkpoint_key(config.checkpoint_key_file)
        logs.insert(0, deployment.verifier)
        own = origin_of(deployment.name, config.writer_id)
    witness = Witness(load_witness_key(config.witness_key_file), logs, own=own)
    return PeerWitness(witness, WitnessStore(config.witness_state))


@router.post(PATH)
async def add(request: Request) -> Response:
    peer: PeerWitness = request.app.state.peer_witness
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return Response(b"a Content-Length is required\n", status_code=411)
    if int(declared) > MAX_BODY:
        return Response(b"the request is too large\n", status_code=413)
    body = await request.body()
    # The store fsyncs the accepted checkpoint before the answer: off the event loop.
    answer = await asyncio.to_thread(add_checkpoint, peer.witness, peer.store, body[:MAX_BODY])
    return Response(answer.body, status_code=answer.status, media_type=answer.content_type)
