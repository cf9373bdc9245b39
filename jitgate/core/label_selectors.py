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
    return all(labels.get(key) == value for key, value in selector.match_labels.items()) and all(
        _requirement_holds(requirement, labels) for requirement in selector.match_expressions
    )
