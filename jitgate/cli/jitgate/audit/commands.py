"""The `jitgate audit` parsers: subcommands, flags and their handlers."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from jitgate.cli.errors import EXIT_USAGE
from jitgate.cli.jitgate.audit import (
    query_cmd,
    reconcile_cmd,
    report_cmd,
    retention_cmd,
    sessions_cmd,
    tail_cmd,
    tlog_cmd,
    verify_cmd,
    witness_cmd,
)
from jitgate.cli.jitgate.audit.guard import guarded
from jitgate.cli.jitgate.audit.options import (
    ExportOptions,
    HoldOptions,
    KeygenOptions,
    ProveOptions,
    PruneOptions,
    QueryOptions,
    ReconcileOptions,
    ReplayOptions,
    ReportOptions,
    SessionsOptions,
    TailOptions,
    VerifyOptions,
    VerifyProofOptions,
    WitnessOptions,
)
from jitgate.cli.options import Command, Parser, add_flag, command
from jitgate.core.durations import DurationError, parse_duration

AUDIT_DESCRIPTION = """\
Verify, query, export, follow and review jitgate's tamper-evident audit log.

What each check proves, and against whom:
  verify                       hash chain: every writer's records are whole and in order
                               (nothing edited, deleted, inserted, reordered or cut). Against
                               accidental corruption and edits by someone without keys (who
                               can recompute the chain: alone it stops no deliberate editor)
  verify --key-file K          HMAC: each record was MAC'd with the key. Against edits by
                               anyone without the HMAC key (every writer holds it)
  verify --verifier-key PUB    signed checkpoints: each writer's records are the ones its
                               latest Ed25519-signed checkpoint covers, checked with the
                               public key only (no secret); prints when it was signed. Against
                               anyone without the signing key. Consistency proofs: each
                               checkpoint extends the one before, so history already
                               checkpointed cannot be rewritten without the signing key
  verify ... --witness-key W   witnesses: the latest checkpoints are cosigned by witnesses
    [--min-cosignatures N]     (`audit witness`, or webhook replicas witnessing one another)
    [--max-age 10m]            that saw each extend what they cosigned before. Against a key
                               holder (HMAC and signing keys) rewriting, cutting the tail or
                               forking the log (--max-age: cutting it back to a checkpoint
                               cosigned long ago)
  prove / verify-proof         one record is in its writer's signed log: offline, public key
                               only, without the log
  verify (session chunks)      each chunk of a recorded session is a chained record and a
                               Merkle leaf: one changed byte of a recording is named like any
                               edited record, and `prove` proves a single chunk
  reconcile --apiserver-audit  jitgate's allows and the API server's own audit log name each
                               other: against forged records (UNHEARD: a review no API server
                               sent), lost ones, and a bypassed webhook (UNRECORDED)
  prune / hold / release       retention of PostgreSQL tables by whole partitions, after a
                               pruning record that keeps every check above working; legal
                               holds that stop pruning, each recorded
  jitgate webhook --client-ca  not a check of the log but of who is heard: only the API
                               server gets decisions and records, against forged reviews
                               POSTed to the webhook; records say "caller": verified or
                               unverified

Exit codes: 0 success, 1 check failed (tampered or damaged log), 2 bad usage or unreadable
input."""


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="verify, query, export, follow and review the audit log",
        description=AUDIT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Without a subcommand: the help, on stderr, and exit code 2.
    audit.set_defaults(handler=Command(lambda _namespace: audit, _usage))
    commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND", parser_class=Parser)

    verify = commands.add_parser(
        "verify",
        help="check every writer's hash chain (and MACs with --key-file)",
        description="Check every writer's hash chain, seals, head witnesses and (with a key) "
        "MACs. Exit 0 if intact; 1 naming the first broken record of each broken writer "
        "and how it broke (edited, deleted, inserted, reordered, truncated, bad MAC); "
        "2 if the log or the key cannot be read or the key does not fit. Against whom: the "
        "hash chain alone catches accidental corruption and edits by someone without keys; "
        "--key-file (HMAC) edits by anyone without the HMAC key; --verifier-key (signed "
        "checkpoints and consistency proofs, public key only) anyone without the signing key, "
        "including rewrites of history already checkpointed; --witness-key (cosignatures) a "
        "key holder rewriting, cutting the tail or forking the log. `jitgate audit --help` "
        "has the table.",
    )
    _common(verify)
    verify.add_argument("--writer", action="append", default=[], help="only this writer")
    verify.add_argument(
        "--save-heads", metavar="FILE", help="after verifying, save each writer's head here"
    )
    verify.add_argument(
        "--expect-heads",
        metavar="FILE",
        help="heads saved by an earlier run: each must still be in the log (catches truncation "
        "and rewriting by someone with write access)",
    )
    verify.add_argument(
        "--verifier-key",
        metavar="FILE",
        help="the checkpoint key's public half (`jitgate audit keygen` prints it): also check "
        "that each writer's checkpoints extend one another and its records are the ones the "
        "latest covers, with no secret",
    )
    verify.add_argument(
        "--witness-key",
        metavar="FILE",
        action="append",
        default=[],
        help="a witness's public key (`jitgate audit keygen NAME --witness` prints it); with "
        "--verifier-key: each writer's latest checkpoint must be cosigned by witnesses, which "
        "a holder of the writers' keys cannot get for a rewritten, cut or forked history",
    )
    verify.add_argument(
        "--min-cosignatures",
        type=_positive,
        metavar="N",
        help="how many of the --witness-key witnesses must have cosigned (default 1)",
    )
    verify.add_argument(
        "--max-age",
        metavar="DURATION",
        help="and that recently (e.g. 10m): writers are cosigned every minute, so an older "
        "cosignature is a log cut back to a checkpoint cosigned before, or stopped writers",
    )
    verify.set_defaults(handler=command(VerifyOptions, guarded("verify", verify_cmd.run)))

    keygen = commands.add_parser(
        "keygen",
        help="make a checkpoint signing key (Ed25519) and print its public verifier key",
        description="Write a new Ed25519 signer key (golang.org/x/mod/sumdb/note format) for "
        "--checkpoint-key to FILE (mode 0600, never overwritten) and print the verifier key "
        "that `verify --verifier-key` and `verify-proof` use. NAME prefixes every writer's "
        "checkpoint origin (NAME/WRITER), e.g. jitgate.example.com/prod.",
    )
    keygen.add_argument("name", metavar="NAME")
    keygen.add_argument("--out", metavar="FILE", required=True, help="where the signer key goes")
    keygen.add_argument(
        "--witness",
        action="store_true",
        help="a witness's cosigning key instead (C2SP tlog-cosignature, type 0x04); the printed "
        "key goes to `verify --witness-key`",
    )
    keygen.set_defaults(handler=command(KeygenOptions, guarded("keygen", tlog_cmd.run_keygen)))

    reconcile = commands.add_parser(
        "reconcile",
        help="match jitgate's log with the API server's own audit log, both ways",
        description="Match the API server's audit log (JSON lines of audit.k8s.io/v1 Events, "
        "--audit-log-path; Metadata level or more for pods/exec, attach, portforward and "
        "workload deletes and scales) with jitgate's log. Named, exit 1: an allowed protected "
        "action in the API server's log that no jitgate record answers for (jitgate bypassed, "
        "or its record gone); a jitgate action.allowed, within the time the API server's log "
        "covers, that no API server event names (forged, or lost; an earlier try of a logged "
        "scale or delete, which the API server validates again with a uid of its own, is "
        "counted with that request); an event naming a record "
        "that is missing or differs (leaf hash, user, namespace). Exit 0 when they agree. "
        "Allowed answers name their record in auditAnnotations (writer, seq, leaf), which the "
        "API server keeps. Against whom: whoever can write one log but not the other; it "
        "names forged records (e.g. reviews POSTed to a webhook without --client-ca by "
        "someone other than the API server) and actions that bypassed jitgate.",
    )
    _common(reconcile)
    reconcile.add_argument(
        "--apiserver-audit", metavar="FILE", action="append", required=True,
        help="the API server's audit log file; repeat for rotated files",
    )  # fmt: skip
    reconcile.add_argument(
        "--namespace", "-n", action="append", default=[],
        help="only look for unrecorded actions in these namespaces (the protected ones)",
    )  # fmt: skip
    reconcile.add_argument(
        "--exempt-user", action="append", default=[],
        help="users that act without jitgate, as the webhook's --exempt-user (system: users "
        "and jitgate's defaults always)",
    )  # fmt: skip
    reconcile.add_argument(
        "--exempt-group", action="append", default=[],
        help="groups that act without jitgate, as the webhook's --exempt-group",
    )  # fmt: skip
    reconcile.set_defaults(
        handler=command(ReconcileOptions, guarded("reconcile", reconcile_cmd.run))
    )

    witness = commands.add_parser(
        "witness",
        help="cosign the writers' checkpoints, from outside their blast radius",
        description="Serve C2SP tlog-witness add-checkpoint on HOST:PORT (POST "
        "/add-checkpoint): cosign a writer's checkpoint only if a consistency proof shows it "
        "extends the last one this witness cosigned for that writer (old size other than its "
        "latest: 409 with its latest size; bad proof: 422; unknown log: 404; not signed by the "
        "log's key: 403). Run it where the writers' keys and volumes are not, with its own key "
        "and --state directory; writers submit with --witness URL. Against a holder of the "
        "writers' HMAC and signing keys: a log they rewrite, cut or fork does not extend what "
        "this witness cosigned, so it gets no cosignature and `verify --witness-key` names "
        "it. (Webhook replicas can witness one another the same way: `jitgate webhook "
        "--witness-key`.)",
    )
    add_flag(witness, "--key", metavar="FILE", required=True, help="the witness's own key")
    witness.add_argument(
        "--log-key",
        metavar="FILE",
        action="append",
        default=[],
        required=True,
        help="the writers' checkpoint verifier key: every writer under it is a log to witness",
    )
    add_flag(
        witness, "--state", metavar="DIR", required=True, help="where the latest cosigned "
        "checkpoint of each log is kept (its own volume)"
    )  # fmt: skip
    add_flag(witness, "--listen", metavar="HOST:PORT", default="127.0.0.1:8444")
    witness.set_defaults(handler=command(WitnessOptions, guarded("witness", witness_cmd.run)))

    prove = commands.add_parser(
        "prove",
        help="write a C2SP tlog-proof that one record is in its writer's signed log",
        description="Write a C2SP tlog-proof of record WRITER:SEQ: the record as stored, its "
        "Merkle inclusion proof and the writer's signed checkpoint. Anyone holding the verifier "
        "key checks it with `verify-proof`, without the log or any secret: proof to an auditor "
        "of one record, against anyone without the signing key.",
    )
    _common(prove)
    prove.add_argument("record", metavar="WRITER:SEQ")
    prove.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    prove.set_defaults(handler=command(ProveOptions, guarded("prove", tlog_cmd.run_prove)))

    verify_proof = commands.add_parser(
        "verify-proof",
        help="check a tlog-proof offline with the verifier key",
        description="Check a proof written by `prove` (FILE, or - for stdin) with the public "
        "verifier key only. Exit 0 and print the record if it is under its writer's signed "
        "checkpoint; 1 if not.",
    )
    verify_proof.add_argument("proof", metavar="FILE")
    verify_proof.add_argument("--verifier-key", metavar="FILE", required=True)
    verify_proof.set_defaults(
        handler=command(VerifyProofOptions, guarded("verify-proof", tlog_cmd.run_verify_proof))
    )

    query = commands.add_parser(
        "query", help="print selected records as a table, JSON or CSV", description="Print "
        "selected records in time order: a table by default, or a JSON array or CSV."
    )  # fmt: skip
    _common(query)
    _filters(query)
    query.add_argument("--output", "-o", choices=("table", "json", "csv"), default="table")
    query.add_argument("--limit", type=_positive, metavar="N", help="at most N records")
    query.set_defaults(handler=command(QueryOptions, guarded("query", query_cmd.run_query)))

    export = commands.add_parser(
        "export",
        help="write selected records as JSON Lines or CSV",
        description="Write selected records (the writers' own seal, pruning and recovery "
        "records included) as JSON Lines, exactly as hashed, or as CSV.",
    )
    _common(export)
    _filters(export)
    export.add_argument(
        "--format",
        choices=("jsonl", "csv", "asciicast"),
        default="jsonl",
        help="asciicast: one recorded session (--session ID) as asciicast v2, for asciinema",
    )
    export.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(handler=command(ExportOptions, guarded("export", query_cmd.run_export)))

    sessions = commands.add_parser(
        "sessions",
        help="list recorded exec, attach and port-forward sessions",
        description="List the sessions the session gateway recorded: id, start, duration, "
        "user, pod, command, grant, request, approvers, reason and how each ended (exited with "
        "its code, client closed, or terminated: grant expired, revoked, idle timeout, gateway "
        "stopping, limit, recording failed, port-forward tunnel unreadable). A port-forward "
        "shows its connections and the bytes forwarded each way instead of a command. Filters "
        "choose sessions by what their start record says; --since/--until by when they "
        "started.",
    )
    _common(sessions)
    group = sessions.add_argument_group("filters (repeat a flag to match any of its values)")
    group.add_argument("--since", metavar="WHEN", help="started at or after (time, date, 2h)")
    group.add_argument("--until", metavar="WHEN", help="started before")
    group.add_argument("--user", action="append", default=[], help="the session's user")
    group.add_argument("--namespace", "-n", action="append", default=[], help="namespace")
    group.add_argument("--pod", action="append", default=[], metavar="NAME", help="pod")
    group.add_argument("--grant", action="append", default=[], help="grant name")
    group.add_argument("--request", action="append", default=[], help="AccessRequest name")
    group.add_argument("--writer", action="append", default=[], help="writer (pod) id")
    group.add_argument("--session", action="append", default=[], metavar="ID", help="session id")
    sessions.set_defaults(type=[], verb=[], object=[])
    sessions.add_argument("--output", "-o", choices=("table", "json"), default="table")
    sessions.set_defaults(
        handler=command(SessionsOptions, guarded("sessions", sessions_cmd.run_sessions))
    )

    replay = commands.add_parser(
        "replay",
        help="play a recorded session in the terminal",
        description="Write a recorded session's output to the terminal with its own timing "
        "(or faster with --speed; --max-idle shortens long pauses); a port-forward, which has "
        "no terminal recording, is listed connection by connection. Exit 1 if a chunk of the "
        "recording is missing or damaged (then run verify).",
    )
    _common(replay)
    replay.add_argument("session", metavar="SESSION", help="the session id (`sessions` lists)")
    replay.add_argument(
        "--speed", type=_speed, default=1.0, metavar="X", help="play X times as fast (1)"
    )
    replay.add_argument(
        "--max-idle",
        type=_seconds,
        metavar="S",
        help="wait at most this long between outputs: seconds (2.5) or a duration (2s)",
    )
    replay.set_defaults(handler=command(ReplayOptions, guarded("replay", sessions_cmd.run_replay)))

    tail = commands.add_parser(
        "tail", help="print the latest records, and follow new ones with --follow"
    )
    _common(tail)
    _filters(tail, tail=True)
    tail.add_argument(
        "--lines", "-n", type=_lines, default=10, metavar="N", help="latest N records (10)"
    )
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    tail.add_argument("--interval", default="1s", help="how often to look for new records")
    tail.add_argument("--max-records", type=_positive, metavar="N", help="stop after N new ones")
    tail.add_argument("--for", dest="for_", metavar="DURATION", help="stop following after this")
    tail.add_argument("--output", "-o", choices=("line", "json"), default="line")
    tail.set_defaults(handler=command(TailOptions, guarded("tail", tail_cmd.run)))

    report = commands.add_parser(
        "report",
        help="the periodic access review: requests, approvals, use and findings",
        description="Who requested, approved and used what in the window, and findings: "
        "actions outside business hours, repeated requests for one object, approvals "
        "without a comment, break-glass grants awaiting review, bursts of denials.",
    )
    _common(report)
    report.add_argument("--since", default="30d", metavar="WHEN", help="window start (30d)")
    report.add_argument("--until", metavar="WHEN", help="window end (now)")
    report.add_argument("--business-hours", default="08:00-18:00", metavar="HH:MM-HH:MM")
    report.add_argument("--business-days", default="Mon-Fri", metavar="DAYS")
    report.add_argument("--timezone", default="UTC", metavar="ZONE", help="e.g. Europe/Berlin")
    report.add_argument("--repeat-threshold", type=_positive, default=3, metavar="N")
    report.add_argument("--burst-threshold", type=_positive, default=5, metavar="N")
    report.add_argument("--burst-window", default="10m", metavar="DURATION")
    report.add_argument("--output", "-o", choices=("table", "json"), default="table")
    report.add_argument(
        "--fail-on-findings", action="store_true", help="exit 1 when there are findings"
    )
    report.set_defaults(handler=command(ReportOptions, guarded("report", report_cmd.run)))

    prune = commands.add_parser(
        "prune",
        help="drop PostgreSQL partitions past retention, after a pruning record",
        description="Run as the pruning role (a CronJob): make the partitions of the next "
        "periods, then drop every partition wholly older than the table's retention (set by "
        "its owner with retention= in the audit URL), oldest first, unless a legal hold is in "
        "force. First it checks every writer's records in them and stores an audit.pruned "
        "record saying where each writer's log now starts (with the Merkle tree state of what "
        "is pruned), so verify, verify --verifier-key and prove carry on. File logs are pruned "
        "by their own writers.",
    )
    _common(prune)
    _writer_flags(prune, "pruner")
    prune.add_argument("--dry-run", action="store_true", help="say what would be pruned")
    prune.set_defaults(handler=command(PruneOptions, guarded("prune", retention_cmd.run_prune)))

    for name, run, what in (
        ("hold", retention_cmd.run_hold, "set a legal hold: nothing is pruned until released"),
        ("release", retention_cmd.run_release, "release every legal hold in force"),
    ):
        parser = commands.add_parser(
            name,
            help=what,
            description=f"{what[0].upper()}{what[1:]}. Recorded (audit.held, audit.released) "
            "in the chain of --writer, with --reason. On PostgreSQL only the table's owner may "
            "set or release one; on files it is the LEGAL_HOLD file in the audit directory.",
        )
        _common(parser)
        parser.add_argument("--reason", required=True, help="why (a case or ticket)")
        _writer_flags(parser, "admin")
        parser.set_defaults(handler=command(HoldOptions, guarded(name, run)))


def _common(parser: argparse.ArgumentParser) -> None:
    add_flag(
        parser,
        "--audit",
        metavar="URL",
        required=True,
        help="the audit log: file:///var/lib/jitgate/audit or postgresql://...?table=NAME",
    )
    add_flag(
        parser,
        "--key-file",
        metavar="FILE",
        help="HMAC key to check the records' MACs (also read from JITGATE_AUDIT_KEY_FILE)",
    )


def _writer_flags(parser: argparse.ArgumentParser, default: str) -> None:
    """The chain this command records in: a writer id of its own, signed like the others."""
    parser.add_argument("--writer", default=default, help=f"the writer id to record as ({default})")
    add_flag(
        parser,
        "--checkpoint-key",
        metavar="FILE",
        help="Ed25519 signer key: sign this writer's checkpoints, as the webhook and operator "
        "do, so `verify --verifier-key` checks its records too",
    )


def _filters(parser: argparse.ArgumentParser, *, tail: bool = False) -> None:
    group = parser.add_argument_group("filters (repeat a flag to match any of its values)")
    if not tail:
        group.add_argument(
            "--since", metavar="WHEN", help="RFC 3339 time, date, or age such as 30d or 2h"
        )
        group.add_argument("--until", metavar="WHEN", help="end of the window (exclusive)")
    group.add_argument("--user", action="append", default=[], help="the acting user")
    # `tail -n 3` is three records, as with tail(1); there the namespace is --namespace only.
    namespace_flags = ("--namespace",) if tail else ("--namespace", "-n")
    group.add_argument(*namespace_flags, action="append", default=[], help="namespace")
    group.add_argument(
        "--pod", action="append", default=[], metavar="NAME", help="actions on this pod"
    )
    group.add_argument(
        "--object",
        action="append",
        default=[],
        metavar="KIND/NAME",
        help="actions on this object, as kubectl names it: pod/web-0, deploy/web, sts/db",
    )
    group.add_argument(
        "--type", action="append", default=[], help="record type, e.g. action.denied or request.*"
    )
    group.add_argument(
        "--verb", action="append", default=[], help="exec, attach, portforward, delete, scale"
    )
    group.add_argument("--grant", action="append", default=[], help="grant name")
    group.add_argument("--request", action="append", default=[], help="AccessRequest name")
    group.add_argument("--writer", action="append", default=[], help="writer (pod) id")
    group.add_argument(
        "--session", action="append", default=[], metavar="ID", help="a recorded session's id"
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _lines(text: str) -> int:
    try:
        return _count(text)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(
            f"{error} (-n is the number of records, as in tail -n 3; "
            f"a namespace is --namespace {text})"
        ) from None


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number such as 2 or 0.5") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _seconds(text: str) -> float:
    try:
        return _speed(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        return parse_duration(text).total_seconds()
    except DurationError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (2.5) or a duration (2s)"
        ) from None


def _positive(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("it must be at least 1")
    return value
