"""The people and service accounts every tier's story is told with.

alice (a developer) asks for access, bob and carol (SREs) approve it, carol is also the SRE on
call who may break the glass. The API server tier gives each a static token, the emulator a
kubeconfig context named after them.
"""

from __future__ import annotations

from dataclasses import dataclass

DEVELOPERS = "developers"
SRE = "sre"


@dataclass(frozen=True)
class Person:
    name: str
    groups: tuple[str, ...]


ALICE = Person("alice", (DEVELOPERS,))
BOB = Person("bob", (SRE,))
CAROL = Person("carol", (SRE,))
PEOPLE = (ALICE, BOB, CAROL)

OPERATOR_USER = "system:serviceaccount:jitgate:jitgate-operator"
WEBHOOK_USER = "system:serviceaccount:jitgate:jitgate-webhook"
