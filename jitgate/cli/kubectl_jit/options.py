"""What each `kubectl jit` command was asked to do, as typed options."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from jitgate.core.api import Decision
from jitgate.core.vocabulary import Verb


@dataclass(frozen=True)
class Cluster:
    """Which cluster and namespace, as kubectl's own flags say (before or after the command)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class RequestOptions:
    cluster: Cluster
    verb: Verb
    reason: str
    duration: str | None
    ticket: str | None
    break_glass: bool
    name: str | None
    wait: bool
    timeout: dt.timedelta  # how long --wait waits
    pod: str | None = None  # exec, attach, portforward
    container: str | None = None  # exec, attach
    targets: tuple[str, ...] = ()  # delete, scale: KIND/NAME or KIND NAME...
    exec_command: tuple[str, ...] | None = None  # exec: the words after --
    replicas: int | None = None  # scale: the replica count to allow
    max_uses: int | None = None  # a one-time or N-use grant
    start_at: dt.datetime | None = None  # a scheduled start


@dataclass(frozen=True)
class ExtendOptions:
    """`kubectl jit extend NAME --by DURATION --reason WHY`: continue a live grant."""

    cluster: Cluster
    name: str
    by: str
    reason: str
    ticket: str | None
    wait: bool
    timeout: dt.timedelta


@dataclass(frozen=True)
class WaitOptions:
    """`kubectl jit wait NAME`: resume waiting for a request's decision."""

    cluster: Cluster
    name: str
    timeout: dt.timedelta


@dataclass(frozen=True)
class ListOptions:
    cluster: Cluster
    all_namespaces: bool
    pending: bool
    mine: bool
    output: Literal["json", "yaml", "wide"] | None


@dataclass(frozen=True)
class ShowOptions:
    cluster: Cluster
    name: str
    output: Literal["json", "yaml"] | None


@dataclass(frozen=True)
class DecisionOptions:
    cluster: Cluster
    name: str
    decision: Decision
    message: str | None
    yes: bool


@dataclass(frozen=True)
class ReviewOptions:
    cluster: Cluster
    name: str
    message: str | None
    yes: bool


@dataclass(frozen=True)
class StopOptions:
    """`revoke` (an Approved request's grant) or `cancel` (a Pending request)."""

    cluster: Cluster
    name: str
    annotation: str
    wanted: Literal["Pending", "Approved"]
    reason: str | None = None  # revoke only
