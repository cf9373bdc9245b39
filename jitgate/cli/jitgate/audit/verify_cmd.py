"""`jitgate audit verify`: every writer's hash chain, seals, head witnesses and MACs."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

from jitgate.audit import pruning
from jitgate.audit.timefmt import parse_span
from jitgate.audit.tlog import LeafTree
from jitgate.audit.verify import ChainReport, Problem, Witness, verify_chain
from jitgate.cli.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError
from jitgate.cli.jitgate.audit import reading, tlog_cmd, witness_cmd
from jitgate.cli.jitgate.audit.options import VerifyOptions


def run(options: VerifyOptions) -> int:
    key = reading.key(options.log)
    verifier = tlog_cmd.load_verifier(options.verifier_key) if options.verifier_key else None
    witness_keys = witness_cmd.load_witness_keys(options.witness_key)
    try:
        max_age = parse_span(options.max_age) if options.max_age else None
    except ValueError as error:
        raise UsageError(f"--max-age: {error}") from error
    if max_age is not None and not witness_keys:
        raise UsageError("--max-age applies to witness cosignatures: give --witness-key too")
    needed = options.min_cosignatures or (1 if witness_keys else 0)
    if (witness_keys or options.min_cosignatures) and verifier is None:
        raise UsageError("a cosignature policy (--witness-key) needs --verifier-key too")
    if needed > len(witness_keys):
        raise UsageError(
            f"--min-cosignatures {needed} needs at least {needed} --witness-key, "
            f"not {len(witness_keys)}"
        )
    public: list[tlog_cmd.PublicCheck] = []
    expected = _expected_heads(options.expect_heads)
    progress = reading.Progress("verified")
    reports: list[ChainReport] = []
    with reading.opened(options.log) as reader:
        writers = reader.writers()
        anchors = pruning.by_writer(reader.pruning_records())
        missing = sorted(set(options.writer) - set(writers))
        if missing:
            raise UsageError(f"there is no writer {missing[0]!r} in the {reader.description}")
        for writer in options.writer or writers:
            witnesses, notes = reader.witnesses(writer)
            if writer in expected:
                witnesses.append(expected[writer])
            for note in notes:
                sys.stderr.write(f"note: {note}\n")
            prefixes = [*anchors.get(writer, []), *reader.pruned_prefixes(writer)]
            plan = tlog_cmd.plan_public(reader, writer, verifier, prefixes) if verifier else None
            leaves = plan.leaves if isinstance(plan, tlog_cmd.PublicPlan) else None
            report = verify_chain(
                writer,
                reader.chain(writer),
                key=key,
                witnesses=witnesses,
                live=reader.is_live(writer),
                on_record=_on_record(progress, leaves),
                anchors=[(a.resume_seq, a.resume_prev) for a in anchors.get(writer, [])],
            )
            reports.append(report)
            _print_report(report)
            if verifier is not None and plan is not None:
                pruned = pruning.start_tree(prefixes, report.first_seq)
                public.append(
                    tlog_cmd.check_public(
                        reader, writer, verifier, _now(), plan, report.ok, pruned, prefixes
                    )
                )
                print(("ok      " if public[-1].ok else "FAILED  ") + public[-1].line)
            if witness_keys:
                policy = witness_cmd.check_policy(
                    writer,
                    reader.checkpoint(writer),
                    witness_keys,
                    needed,
                    now=_now(),
                    max_age=max_age,
                )
                public.append(tlog_cmd.PublicCheck(writer, policy.line, policy.ok))
                print(("ok      " if policy.ok else "FAILED  ") + policy.line)
        for writer in sorted(set(expected) - set(writers)):
            gone = Problem(
                "deleted",
                writer,
                f"the log of writer {writer} was deleted: the saved heads record "
                f"seq {expected[writer].seq}",
            )
            reports.append(ChainReport(writer, 0, None, None, gone))
            _print_report(reports[-1])
    progress.done()
    if options.save_heads:
        heads = {r.writer: {"seq": r.head.seq, "hash": r.head.hash} for r in reports if r.head}
        Path(options.save_heads).write_text(json.dumps(heads, indent=2, sort_keys=True) + "\n")
    return _verdict(reports, key, options, public)


def _on_record(
    progress: reading.Progress, leaves: LeafTree | None
) -> Callable[[int, bytes | None], None]:
    """Count each record verified and, for the public check, add its leaf to the tree."""
    if leaves is None:
        return lambda seq, leaf: progress.tick()

    def on_record(seq: int, leaf: bytes | None) -> None:
        progress.tick()
        leaves.add(seq, leaf)

    return on_record


def _expected_heads(path: str | None) -> dict[str, Witness]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
        return {
            str(writer): Witness(int(head["seq"]), str(head["hash"]), f"saved head in {path}")
            for writer, head in data.items()
        }
    except OSError as error:
        raise UsageError(f"cannot read the heads file {path}: {error.strerror or error}") from error
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise UsageError(
            f"the heads file {path} is not what --save-heads writes ({error})"
        ) from error


def _print_report(report: ChainReport) -> None:
    if report.problem is None:
        span = f"seq {report.first_seq}-{report.head.seq}" if report.head else "no records"
        head = f"  head {report.head.hash[:23]}..." if report.head else ""
        print(f"ok      {report.writer}: {report.records} records, {span}{head}")
    elif report.problem.kind != "wrong-key":
        print(f"FAILED  {report.writer}: {report.problem.message}")
    for note in report.notes:
        sys.stderr.write(f"note: {note}\n")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _verdict(
    reports: list[ChainReport],
    key: bytes | None,
    options: VerifyOptions,
    public: list[tlog_cmd.PublicCheck],
) -> int:
    broken = [r for r in reports if r.problem is not None and r.problem.kind != "wrong-key"]
    unproven = {check.writer for check in public if not check.ok}
    if unproven and not broken:
        print(
            f"The audit log is BROKEN: {len(unproven)} of {len(reports)} writer(s) do not match "
            "their signed or witnessed checkpoints; each is named above."
        )
        return EXIT_CHECK_FAILED
    wrong_key = [r for r in reports if r.problem is not None and r.problem.kind == "wrong-key"]
    records = sum(r.records for r in reports)
    if broken:
        print(
            f"The audit log is BROKEN: {len(broken)} of {len(reports)} writer(s) failed "
            "verification; the first broken record of each is named above."
        )
        return EXIT_CHECK_FAILED
    if wrong_key:
        problem = wrong_key[0].problem
        assert problem is not None
        raise UsageError(
            f"the key in {options.log.key_path} does not fit writer {wrong_key[0].writer}: "
            f"{problem.message}"
        )
    if not reports:
        print("The audit log is empty.")
        return EXIT_OK
    macs = "" if key is not None else " (MACs not checked: no --key-file)"
    signed = ", every one under its signed checkpoint" if public else ""
    if options.witness_key:
        signed += f" cosigned by at least {options.min_cosignatures or 1} witness(es)"
    print(f"The audit log is intact: {len(reports)} writer(s), {records} records{signed}{macs}.")
    return EXIT_OK
