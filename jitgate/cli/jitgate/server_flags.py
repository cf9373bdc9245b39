"""What the long-running components (`jitgate operator`, `jitgate webhook`) share on the
command line: where the audit chain goes and how it is signed, the cluster, and logging."""

from __future__ import annotations

import argparse
from pathlib import Path

from jitgate.cli.errors import UsageError, sentence
from jitgate.cli.options import add_flag


def add_writer_flags(parser: argparse.ArgumentParser) -> None:
    add_flag(
        parser,
        "--audit",
        metavar="URL",
        required=True,
        help="audit log: file:///var/lib/jitgate/audit (a directory) or postgresql://…",
    )
    add_flag(
        parser, "--audit-key-file", metavar="FILE", help="HMAC key that signs each record's hash"
    )
    add_flag(
        parser,
        "--checkpoint-key",
        metavar="FILE",
        help="Ed25519 signer key (`jitgate audit keygen`; keep it off the audit volume): sign "
        "checkpoints of this writer's Merkle tree, so `jitgate audit verify --verifier-key` "
        "checks the log with the public key alone",
    )
    add_flag(
        parser,
        "--witness",
        metavar="URL",
        action="append",
        default=[],
        help="a witness (`jitgate audit witness`, or a webhook replica run with "
        "--witness-key; C2SP tlog-witness) to submit every checkpoint to for its cosignature; "
        "repeat for several (needs --checkpoint-key). A URL whose host's first label is this "
        "writer's id is skipped, so every replica can be given the same list of peers",
    )
    add_flag(
        parser,
        "--witness-ca",
        metavar="FILE",
        help="CA (PEM) that signed the https:// witnesses' certificates, e.g. the webhook's "
        "own CA for replicas witnessing one another (their names are not checked: each "
        "cosignature is signed)",
    )
    add_flag(
        parser,
        "--writer-id",
        metavar="ID",
        default="",
        help="this replica's audit chain (default: $POD_NAME or the host name)",
    )
    add_flag(
        parser,
        "--kubeconfig",
        metavar="FILE",
        # jitgate.kube's one rule, as the kubectl jit client follows it too.
        help="kubeconfig (default: $KUBECONFIG, else the in-cluster service account, "
        "else ~/.kube/config)",
    )
    add_flag(
        parser,
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="log verbosity",
    )


def check_audit_url(url: str) -> None:
    """Refuse a malformed --audit URL before anything starts."""
    from jitgate.audit.errors import AuditError
    from jitgate.audit.url import parse_audit_url

    try:
        parse_audit_url(url)
    except AuditError as error:
        raise UsageError(sentence(f"--audit: {error}")) from error


def witness_urls(urls: tuple[str, ...], checkpoint_key: str | None) -> tuple[str, ...]:
    """The --witness URLs, refused without a checkpoint key for them to cosign."""
    if urls and not checkpoint_key:
        raise UsageError("--witness cosigns checkpoints: it needs --checkpoint-key too.")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--witness {url} is not an http:// or https:// URL.")
    return tuple(dict.fromkeys(urls))


def witness_ca(path: str | None, urls: tuple[str, ...]) -> Path | None:
    """The --witness-ca file, refused without a --witness to use it for."""
    if path is not None and not urls:
        raise UsageError("--witness-ca checks the witnesses' certificates: give --witness too.")
    return existing_file("--witness-ca", path)


def existing_file(flag: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"{flag} {value} is not a readable file.")
    return path


def configure_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
