"""Shared helpers for the compose tests: the full pipeline and short assertions."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from apps.compose import ComposeError, load_compose
from apps.compose.policy import check_policy, normalize_ports
from apps.compose.spec import ComposeProject, ServiceSpec


def load(source: str, **variables: Any) -> ComposeProject:
    """Dedented compose text + variables -> project."""
    return load_compose(textwrap.dedent(source), variables)


def service(body: dict[str, Any], **variables: Any) -> ServiceSpec:
    """Parse a one-service file {"services": {"web": body}} and return the service."""
    doc: dict[str, Any] = {"services": {"web": {"image": "nginx", **body}}}
    return load_compose(yaml.safe_dump(doc), variables).services["web"]


def refused(source: str | dict[str, Any], **variables: Any) -> list[str]:
    """Messages of the ComposeError the source must raise."""
    text = source if isinstance(source, str) else yaml.safe_dump(source)
    with pytest.raises(ComposeError) as info:
        load_compose(textwrap.dedent(text), variables)
    return info.value.messages


def service_refused(body: dict[str, Any], **variables: Any) -> str:
    """The single message a bad service body gets."""
    messages = refused({"services": {"web": {"image": "nginx", **body}}}, **variables)
    assert len(messages) == 1, messages
    return messages[0]


def violations(
    source: str | dict[str, Any],
    *,
    allowed: set[str] = frozenset(),
    interface: str | None = None,
    **variables: Any,
) -> list[tuple[str, str]]:
    """(rule, path) of every policy problem, after the full pipeline."""
    text = source if isinstance(source, str) else yaml.safe_dump(source)
    project = load_compose(textwrap.dedent(text), variables)
    if interface:
        project = normalize_ports(project, interface)
    return [(p.rule, p.path) for p in check_policy(project, allowed_exceptions=allowed)]


def rules(source: str | dict[str, Any], **kwargs: Any) -> set[str]:
    return {rule for rule, _path in violations(source, **kwargs)}


def web(**body: Any) -> dict[str, Any]:
    """A one-service document with the given service keys."""
    return {"services": {"web": {"image": "nginx", **body}}}
