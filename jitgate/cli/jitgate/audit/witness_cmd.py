"""`jitgate audit witness`: cosign the writers' checkpoints from outside their blast radius,
and the cosignature policy of `verify --witness-key ... --min-cosignatures N`.

Run the witness where the writers' keys and volumes are not: its own Ed25519 key (made by
`jitgate audit keygen NAME --witness`), its own state directory, the writers' verifier
key. It cosigns a writer's checkpoint only if it extends the last one it cosigned, so a
holder of the writers' signing key can neither rewrite, cut nor fork a history that a
verifier requiring the witness's cosignature accepts.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from jitgate.audit.checkpoint import Checkpoint
from jitgate.audit.cosignature import CosignatureVerifier, Cosigner, cosignatures
from jitgate.audit.note import NoteError, Verifier, parse_note
from jitgate.audit.witness import Witness
from jitgate.audit.witnessserver import WitnessServer, WitnessStore
from jitgate.cli.errors import EXIT_OK, UsageError
from jitgate.cli.jitgate.audit import tlog_cmd
from jitgate.cli.jitgate.audit.options import WitnessOptions
from jitgate.core.clock import format_time

logger = logging.getLogger("jitgate.audit.witness")


def load_cosigner(path: str) -> Cosigner:
    try:
        return Cosigner.parse(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the witness key {path}") from error
    except NoteError as error:
        raise UsageError(
            f"{path} holds no witness key (make one with `jitgate audit keygen NAME --witness`): "
            f"{error}"
        ) from error


def load_witness_keys(paths: tuple[str, ...]) -> list[CosignatureVerifier]:
    keys = []
    for path in paths:
        try:
            keys.append(CosignatureVerifier.parse(Path(path).read_text()))
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read the witness key {path}") from error
        except NoteError as error:
            raise UsageError(f"{path} holds no witness verifier key: {error}") from error
    return keys


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen is HOST:PORT, e.g. 127.0.0.1:8443, not {text!r}")
    return host.strip("[]"), int(port)


def run(options: WitnessOptions) -> int:
    cosigner = load_cosigner(options.key)
    logs: list[Verifier] = [tlog_cmd.load_verifier(path) for path in options.log_key]
    if not logs:
        raise UsageError("name at least one log with --log-key (the writers' verifier key)")
    server = WitnessServer(
        _listen(options.listen), Witness(cosigner, logs), WitnessStore(Path(options.state))
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logger.info(
        "Witness %s cosigning the logs of %s on %s/add-checkpoint; its key: %s",
        cosigner.name,
        ", ".join(key.name for key in logs),
        server.url,
        cosigner.verifier.vkey,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_OK


@dataclass(frozen=True)
class Cosigned:
    """How the latest checkpoint of a writer fares against the cosignature policy."""

    line: str
    ok: bool


def check_policy(
    writer: str,
    signed: bytes | None,
    witnesses: list[CosignatureVerifier],
    needed: int,
    *,
    now: dt.datetime,
    max_age: dt.timedelta | None = None,
) -> Cosigned:
    """Whether `needed` of `witnesses` cosigned `writer`'s latest checkpoint, and when.

    With `max_age`, those cosignatures must also be that recent: live writers are cosigned
    every minute, so an old one is a log cut back to a checkpoint that was cosigned once.
    """
    if signed is None:
        return Cosigned(f"{writer}: no checkpoint for witnesses to cosign", ok=False)
    try:
        found = cosignatures(signed, witnesses)
        size = Checkpoint.parse(parse_note(signed).text).size
    except (NoteError, ValueError) as error:
        return Cosigned(f"{writer}: the latest checkpoint's cosignatures: {error}", ok=False)
    names = {key.vkey: key.name for key in witnesses}
    by = ", ".join(
        f"{names[vkey]} at {format_time(dt.datetime.fromtimestamp(stamp, dt.UTC))}"
        for vkey, stamp in sorted(found.items())
    )
    if len(found) < needed:
        return Cosigned(
            f"{writer}: the latest checkpoint ({size} records) has {len(found)} of the {needed} "
            "witness cosignature(s) the policy needs: a history no witness cosigned "
            "(rewritten, cut or forked)",
            ok=False,
        )
    if max_age is not None:
        recent = sorted(found.values(), reverse=True)[needed - 1]
        when = dt.datetime.fromtimestamp(recent, dt.UTC)
        if now - when > max_age:
            return Cosigned(
                f"{writer}: the latest checkpoint ({size} records) was last cosigned by "
                f"{needed} witness(es) at {format_time(when)}, longer ago than --max-age: a log "
                "cut back to an older checkpoint, or writers that stopped",
                ok=False,
            )
    return Cosigned(
        f"{writer}: the latest checkpoint ({size} records) is cosigned by {len(found)} "
        f"witness(es) ({by})",
        ok=True,
    )
