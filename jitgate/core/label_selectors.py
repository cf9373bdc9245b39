"""Kubernetes label selector semantics, for AccessPolicy namespace selectors."""

from __future__ import annotations

from collections.abc import Mapping

from jitgate.core.api import LabelSelector, LabelSelectorRequirement


def _requirement_holds(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    match requirement.operator:
        case "In":
            return present and labels[requirement.key] in requirement.values
        case "NotIn":
            return not present or labels[requirement.key] not in requirement.values
        case "Exists":
            return present
        case "DoesNotExist":
            return not present
    raise AssertionError(f"unknown operator {requirement.operator}")  # pragma: no cover


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """All matchLabels and all matchExpressions must hold; an empty selector matches all."""
    # Loops, not all() over generators: every protected action checks a policy's selector.
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for requirement in selector.match_expressions:
        if not _requirement_holds(requirement, labels):
            return False
    return True
