"""Who a Slack user is in Kubernetes: the mapping a cluster admin owns.

A YAML file (the chart renders it into a ConfigMap from `slack.users`)::

    users:
      U012ABCDEF: {user: bob@example.com, groups: [sre]}

A clicker that is not in it is refused. The file is read again whenever it changes on disk
(a ConfigMap update reaches the pod without a restart); a file that cannot be read maps
nobody, so every click is refused until it is fixed (fail closed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jitgate.core.api import Subjects

logger = logging.getLogger("jitgate.operator.slack")


@dataclass(frozen=True)
class KubeIdentity:
    user: str
    groups: tuple[str, ...]


def parse_users(document: Any) -> dict[str, KubeIdentity]:
    """The mapping in a parsed YAML document; ValueError naming the first problem."""
    if not isinstance(document, Mapping) or not isinstance(document.get("users", {}), Mapping):
        raise ValueError("the Slack user mapping must be an object with a `users` object")
    found: dict[str, KubeIdentity] = {}
    for slack_id, entry in (document.get("users") or {}).items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("user"), str):
            raise ValueError(f"Slack user {slack_id} needs a Kubernetes `user`")
        groups = entry.get("groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError(f"Slack user {slack_id}: `groups` must be a list of names")
        if not entry["user"] or entry["user"].startswith("system:"):
            raise ValueError(f"Slack user {slack_id} cannot act as {entry['user']!r}")
        found[str(slack_id)] = KubeIdentity(entry["user"], tuple(groups))
    return found


class SlackUsers:
    """The mapping from a file, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, KubeIdentity] = {}

    def _load(self) -> dict[str, KubeIdentity]:
        try:
            stat = os.stat(self._path)
        except OSError as error:
            logger.warning("Slack user mapping %s is unreadable: %s", self._path, error)
            self._stamp, self._users = None, {}
            return self._users
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                self._users = parse_users(yaml.safe_load(self._path.read_text()))
            except (OSError, ValueError, yaml.YAMLError) as error:
                logger.warning("Slack user mapping %s maps nobody: %s", self._path, error)
                self._users = {}
            self._stamp = stamp
        return self._users

    def identity(self, slack_id: str) -> KubeIdentity | None:
        return self._load().get(slack_id)

    def slack_ids_of(self, subjects: Subjects) -> list[str]:
        """The Slack users mapped to any of these Kubernetes users or groups."""
        return sorted(
            slack_id
            for slack_id, who in self._load().items()
            if subjects.includes(who.user, who.groups)
        )
