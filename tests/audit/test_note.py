"""C2SP signed notes: the spec's example, golang.org/x/mod/sumdb/note's vectors, strictness.

Vectors: c2sp.org/signed-note (C2SP/C2SP signed-note.md, "Example") and
golang.org/x/mod sumdb/note/note_test.go (TestNewVerifier, TestSign, TestOpen).
"""

from __future__ import annotations

import pytest

from jitgate.audit.note import (
    NoteError,
    Signer,
    UnverifiedNoteError,
    Verifier,
    open_note,
    parse_note,
    sign_note,
)

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuw"
    "HjG1Yu72IneyaQM=\n"
).encode()

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZ"
    "b6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33W"
    "Wd1RvMc+QQ=\n"
)


def test_the_spec_example_verifies() -> None:
    note = open_note(SPEC_NOTE, [Verifier.parse(SPEC_VKEY)])
    assert note.text == "This is an example message.\n"
    assert [sig.name for sig in note.verified] == ["example.com/foo"]


def test_signing_is_byte_for_byte_that_of_the_go_implementation() -> None:
    signer = Signer.parse(PETER_SKEY)
    assert signer.skey == PETER_SKEY
    assert signer.verifier.vkey == PETER_VKEY
    assert sign_note(TEXT, [signer]) == (TEXT + "\n" + PETER_SIG).encode()


def test_unknown_signatures_are_ignored_and_known_ones_checked() -> None:
    peter, enoch = Verifier.parse(PETER_VKEY), Verifier.parse(ENOCH_VKEY)
    data = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    one = open_note(data, [peter])
    assert one.text == TEXT
    assert [sig.name for sig in one.verified] == ["PeterNeumann"]
    assert [sig.name for sig in one.unverified] == ["EnochRoot"]
    both = open_note(data, [peter, enoch])
    assert [sig.name for sig in both.verified] == ["PeterNeumann", "EnochRoot"]
    with pytest.raises(UnverifiedNoteError):
        open_note(data, [])


def test_repeated_signature_lines_count_once() -> None:
    data = (TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG).encode()
    note = open_note(data, [Verifier.parse(PETER_VKEY)])
    assert len(note.verified) == 1
    assert len(note.unverified) == 1


def test_a_bad_signature_by_a_trusted_key_refuses_the_note() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match="invalid signature for key PeterNeumann"):
        open_note((TEXT + "\n" + bad).encode(), [Verifier.parse(PETER_VKEY)])
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(("Another text.\n\n" + PETER_SIG).encode(), [Verifier.parse(PETER_VKEY)])


def test_an_ambiguous_trusted_key_is_refused() -> None:
    enoch = Verifier.parse(ENOCH_VKEY)
    impostor = Verifier(enoch.name, enoch.key_id, Verifier.parse(PETER_VKEY).public_key)
    with pytest.raises(NoteError, match="ambiguous key EnochRoot"):
        open_note((TEXT + "\n" + ENOCH_SIG).encode(), [enoch, impostor])


@pytest.mark.parametrize(
    "message",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
        "gKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101,
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # unpadded base64
        TEXT + "\n" + PETER_SIG.replace("— ", "- "),  # a hyphen, not an em dash
        TEXT + "\n" + PETER_SIG.replace("— PeterNeumann ", "— PeterNeumann  "),
        TEXT + "\n" + "— PeterNeumann AAAA\n",  # shorter than a key ID and one byte
    ],
)
def test_malformed_notes_are_refused(message: str) -> None:
    with pytest.raises(NoteError):
        open_note(message.encode(), [Verifier.parse(PETER_VKEY)])


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode())


def test_every_mangling_of_a_verifier_key_is_refused() -> None:
    """As the Go tests do: every substring and every single-byte change."""
    for start in range(len(PETER_VKEY) + 1):
        for end in range(start + 1, len(PETER_VKEY) + 1):
            if (start, end) != (0, len(PETER_VKEY)):
                with pytest.raises(NoteError):
                    Verifier.parse(PETER_VKEY[start:end])
    for position in range(len(PETER_VKEY)):
        mangled = PETER_VKEY[:position] + chr(ord(PETER_VKEY[position]) + 1)
        with pytest.raises(NoteError):
            Verifier.parse(mangled + PETER_VKEY[position + 1 :])


def test_keys_of_the_wrong_length_or_type_are_refused() -> None:
    with pytest.raises(NoteError):
        Verifier.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(NoteError):
        Verifier.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(NoteError):
        Signer.parse(PETER_SKEY.replace("PRIVATE+KEY+", ""))


def test_a_generated_key_signs_what_its_verifier_key_checks() -> None:
    signer = Signer.generate("jitgate.dev/audit/webhook-0")
    verifier = Verifier.parse(signer.verifier.vkey)
    note = open_note(sign_note("jitgate.dev/audit/webhook-0\n3\nabc\n", [signer]), [verifier])
    assert note.verified[0].key_id == signer.key_id
    assert Signer.parse(signer.skey).key_id == signer.key_id


def test_names_with_spaces_or_plus_and_texts_without_newline_are_refused() -> None:
    with pytest.raises(NoteError):
        Signer.generate("two words")
    with pytest.raises(NoteError):
        Signer.generate("a+b")
    with pytest.raises(NoteError):
        sign_note("abc", [Signer.generate("ok")])
