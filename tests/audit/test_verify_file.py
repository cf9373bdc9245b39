"""`jitgate audit verify` on file logs: every way of tampering is caught and named."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from jitgate.audit import AuditRecord
from jitgate.audit.chain import ChainHead, link, record_hash, sign, stored_form

Write = Callable[..., Awaitable[list[AuditRecord]]]
SEGMENT = "w0/00000000000000000001.jsonl"


def segments(log_dir: Path, writer: str = "w0") -> list[Path]:
    return sorted((log_dir / writer).glob("*.jsonl"))


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def encode(record: dict[str, Any]) -> bytes:
    return stored_form(record) + b"\n"


def edit(path: Path, number: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to the record on line `number` (1-based) and store it back."""
    lines = read_lines(path)
    record = json.loads(lines[number - 1])
    change(record)
    lines[number - 1] = encode(record)
    path.write_bytes(b"".join(lines))


@pytest.fixture
async def log20(write: Write, file_url: str) -> list[AuditRecord]:
    return await write(file_url, 20)


async def test_an_intact_log_verifies(cli: Any, file_url: str, key_file: Path, log20: Any) -> None:
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 0, result
    assert "ok      w0: 20 records, seq 1-20" in result.out
    assert "The audit log is intact: 1 writer(s), 20 records." in result.out


async def test_without_a_key_the_chain_is_still_checked(
    cli: Any, write: Write, file_url: str
) -> None:
    await write(file_url, 5, key=None)
    result = cli("verify", "--audit", file_url)
    assert result.code == 0
    assert "MACs not checked" in result.out


async def test_an_edited_field_is_caught(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any
) -> None:
    edit(segments(log_dir)[0], 5, lambda r: r["actor"].update(user="mallory"))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert f"record seq 5 at {SEGMENT} line 5 was edited" in result.out
    assert "no longer matches its hash" in result.out


async def test_a_deleted_record_is_caught(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any
) -> None:
    path = segments(log_dir)[0]
    lines = read_lines(path)
    path.write_bytes(b"".join(lines[:4] + lines[5:]))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert "record seq 5 was deleted" in result.out
    assert f"jumps from seq 4 ({SEGMENT} line 4) to seq 6 at {SEGMENT} line 5" in result.out


async def test_an_inserted_copy_is_caught(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any
) -> None:
    path = segments(log_dir)[0]
    lines = read_lines(path)
    path.write_bytes(b"".join([*lines[:7], lines[2], *lines[7:]]))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert f"the record at {SEGMENT} line 8 was inserted: it is a copy of seq 3" in result.out


async def test_an_inserted_forged_record_is_caught(
    cli: Any, write: Write, file_url: str, log_dir: Path
) -> None:
    """No key: the forger can compute hashes and link to seq 4, yet seq 5 is taken."""
    records = await write(file_url, 10, key=None)
    path = segments(log_dir)[0]
    forged = link(
        {"type": "action.allowed", "time": records[4].time, "actor": {"user": "mallory"}},
        writer="w0",
        head=ChainHead(4, records[3].hash),
        key=None,
    )
    lines = read_lines(path)
    path.write_bytes(b"".join([*lines[:4], forged.line, *lines[4:]]))
    result = cli("verify", "--audit", file_url)
    assert result.code == 1
    assert f"the record at {SEGMENT} line 5 was inserted: it claims seq 5" in result.out


async def test_reordered_records_are_caught(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any
) -> None:
    path = segments(log_dir)[0]
    lines = read_lines(path)
    lines[4], lines[5] = lines[5], lines[4]
    path.write_bytes(b"".join(lines))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert (
        f"records were reordered: seq 6 at {SEGMENT} line 5 comes before seq 5 at {SEGMENT} line 6"
        in result.out
    )


async def test_a_tail_cut_mid_record_is_caught(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any
) -> None:
    path = segments(log_dir)[0]
    path.write_bytes(path.read_bytes()[:-40])
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert f"the log was truncated: {SEGMENT} line 20 is incomplete" in result.out


async def test_whole_records_cut_from_the_tail_are_caught(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any
) -> None:
    path = segments(log_dir)[0]
    path.write_bytes(b"".join(read_lines(path)[:17]))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert "the log was truncated: it ends at seq 17 but the head file w0/HEAD records seq 20" in (
        result.out
    )


async def test_saved_heads_catch_a_truncation_that_also_rewrote_the_head_file(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any, tmp_path: Path
) -> None:
    heads = tmp_path / "heads.json"
    assert cli("verify", "--audit", file_url, "--save-heads", heads).code == 0
    path = segments(log_dir)[0]
    path.write_bytes(b"".join(read_lines(path)[:17]))
    (log_dir / "w0" / "HEAD").unlink()
    assert cli("verify", "--audit", file_url).code == 0  # nothing inside the log says otherwise
    result = cli("verify", "--audit", file_url, "--expect-heads", heads)
    assert result.code == 1
    assert f"ends at seq 17 but the saved head in {heads} records seq 20" in result.out


async def test_a_bad_mac_is_caught(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any
) -> None:
    edit(segments(log_dir)[0], 5, lambda r: r.update(mac=sign(r["hash"], b"not the real key!!")))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert f"record seq 5 at {SEGMENT} line 5 has a bad MAC" in result.out


async def test_an_edit_with_a_recomputed_hash_fails_its_mac(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any
) -> None:
    def forge(record: dict[str, Any]) -> None:
        record["actor"]["user"] = "mallory"
        record["hash"] = record_hash(record)

    edit(segments(log_dir)[0], 5, forge)
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert "record seq 5" in result.out and "has a bad MAC" in result.out


async def test_without_a_key_a_rehashed_edit_breaks_the_next_link(
    cli: Any, write: Write, file_url: str, log_dir: Path
) -> None:
    await write(file_url, 10, key=None)

    def forge(record: dict[str, Any]) -> None:
        record["actor"]["user"] = "mallory"
        record["hash"] = record_hash(record)

    edit(segments(log_dir)[0], 5, forge)
    result = cli("verify", "--audit", file_url)
    assert result.code == 1
    assert f"the chain breaks at seq 6 ({SEGMENT} line 6)" in result.out
    assert "was edited and its hash recomputed" in result.out


async def test_a_wrong_key_is_unreadable_input(
    cli: Any, file_url: str, tmp_path: Path, log20: Any
) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text("this-is-not-the-key-that-signed-it\n")
    result = cli("verify", "--audit", file_url, "--key-file", wrong)
    assert result.code == 2
    assert result.one_sentence_error
    assert f"the key in {wrong} does not fit writer w0" in result.err
    assert "wrong key" in result.err


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read the key file"), (b"short\n", "holds 5 bytes")],
)
async def test_an_unusable_key_file_is_unreadable_input(
    cli: Any, file_url: str, tmp_path: Path, log20: Any, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "bad.key"
    if content is not None:
        path.write_bytes(content)
    result = cli("verify", "--audit", file_url, "--key-file", path)
    assert result.code == 2
    assert result.one_sentence_error and expected in result.err


async def test_a_key_for_a_log_without_macs_is_unreadable_input(
    cli: Any, write: Write, file_url: str, key_file: Path
) -> None:
    await write(file_url, 3, key=None)
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 2
    assert "carries no MACs" in result.err


async def test_only_the_broken_writer_fails(
    cli: Any, write: Write, file_url: str, log_dir: Path, key_file: Path
) -> None:
    await write(file_url, 5, writer_id="webhook-0")
    await write(file_url, 5, writer_id="webhook-1")
    edit(segments(log_dir, "webhook-1")[0], 2, lambda r: r.update(namespace="kube-system"))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert "ok      webhook-0: 5 records" in result.out
    assert "FAILED  webhook-1: record seq 2 at webhook-1/" in result.out
    assert "1 of 2 writer(s) failed" in result.out


# -- segments --------------------------------------------------------------------------


@pytest.fixture
async def segmented(write: Write, file_url: str, log_dir: Path) -> list[Path]:
    await write(f"{file_url}?segment_size=3KiB", 30)
    found = segments(log_dir)
    assert len(found) >= 3
    return found


async def test_a_segmented_log_verifies(
    cli: Any, file_url: str, key_file: Path, segmented: list[Path]
) -> None:
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 0, result.out
    for path in segmented[:-1]:
        *_, last, seal = map(json.loads, read_lines(path))
        assert seal["type"] == "audit.sealed"
        assert seal["context"] == {
            "segment": path.name,
            "firstSeq": int(path.stem),
            "lastSeq": last["seq"],
            "head": last["hash"],
        }


async def test_a_segment_cut_before_its_seal_is_caught(
    cli: Any, file_url: str, key_file: Path, segmented: list[Path]
) -> None:
    first = segmented[0]
    first.write_bytes(b"".join(read_lines(first)[:-2]))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert f"segment w0/{first.name} ends at seq" in result.out
    assert "without its seal record" in result.out


async def test_a_deleted_oldest_segment_is_caught(
    cli: Any, file_url: str, key_file: Path, segmented: list[Path]
) -> None:
    segmented[0].unlink()
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert "were deleted: the log starts at seq" in result.out
    assert "no pruning record accounts for the earlier ones" in result.out


async def test_a_deleted_middle_segment_is_caught(
    cli: Any, file_url: str, key_file: Path, segmented: list[Path]
) -> None:
    segmented[1].unlink()
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert "were deleted: the chain jumps from seq" in result.out


# -- bad input -------------------------------------------------------------------------


async def test_a_corrupt_line_is_named(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any
) -> None:
    path = segments(log_dir)[0]
    lines = read_lines(path)
    lines[6] = b'{"seq": 7, "this is not json\n'
    path.write_bytes(b"".join(lines))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert f"the line at {SEGMENT} line 7 is not an audit record (not valid JSON)" in result.out
    query = cli("query", "--audit", file_url)
    assert query.code == 1
    assert query.one_sentence_error
    assert f"{SEGMENT} line 7 is not valid JSON" in query.err


@pytest.mark.parametrize("where", ["root", "writer"])
async def test_a_file_that_is_not_a_segment_is_unreadable_input(
    cli: Any, file_url: str, log_dir: Path, log20: Any, where: str
) -> None:
    stray = (log_dir if where == "root" else log_dir / "w0") / "notes.txt"
    stray.write_text("remember to rotate the key\n")
    for command in ("verify", "query", "export"):
        result = cli(command, "--audit", file_url)
        assert result.code == 2, command
        assert result.one_sentence_error, result.err
        assert f"{stray} is not" in result.err


async def test_a_missing_directory_is_unreadable_input(cli: Any, tmp_path: Path) -> None:
    for command in ("verify", "query", "export", "tail", "report"):
        result = cli(command, "--audit", f"file://{tmp_path}/nowhere")
        assert result.code == 2
        assert result.err == (
            f"jitgate audit {command}: the audit directory {tmp_path}/nowhere does not exist.\n"
        )


async def test_an_unknown_url_scheme_is_bad_usage(cli: Any) -> None:
    result = cli("verify", "--audit", "s3://bucket/audit")
    assert result.code == 2 and result.one_sentence_error


async def test_the_audit_url_comes_from_the_environment(
    cli: Any, file_url: str, log20: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JITGATE_AUDIT", file_url)
    assert cli("verify").code == 0


@pytest.mark.parametrize(
    "line",
    [
        b'{"seq": 7, "hash": "sha256:x", "prev": "p", "writer": "w0", "v": 1, "n": NaN}\n',
        b'{"seq": 7, "hash": "\\ud800", "prev": "p", "writer": "w0", "v": 1, "mac": "\\udfff"}\n',
        b"\xff\xfe not even UTF-8\n",
        b"[1, 2, 3]\n",
        b"\n",
    ],
)
async def test_hostile_lines_are_reported_not_crashed_on(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, log20: Any, line: bytes
) -> None:
    path = segments(log_dir)[0]
    lines = read_lines(path)
    lines[6] = line
    path.write_bytes(b"".join(lines))
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 1
    assert f"{SEGMENT} line 7" in result.out
    for command in ("query", "export", "report"):
        outcome = cli(command, "--audit", file_url, "--since", "2026-01-01")
        assert outcome.code == 1, (command, outcome)
        assert outcome.one_sentence_error and f"{SEGMENT} line 7" in outcome.err
