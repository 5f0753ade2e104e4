"""The whole reading pipeline in one call, in the order that keeps the policy sound.

YAML is loaded with limits, then interpolated, then parsed: the parser (and after it the
policy) only ever sees final values, whatever variables the author used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.compose.interpolate import interpolate
from apps.compose.limits import Limits, platform_limits
from apps.compose.schema import parse_project
from apps.compose.spec import ComposeProject
from apps.compose.yaml_safe import safe_load


def load_compose(
    source: str | bytes,
    variables: Mapping[str, Any] | None = None,
    *,
    limits: Limits | None = None,
    missing: set[str] | None = None,
) -> ComposeProject:
    """Compose text + variables -> ComposeProject, or ComposeError (never anything else).

    ``missing`` collects the names of variables used without a value (they become "").
    ``limits`` defaults to the platform's (``platform_limits``).
    The policy is not applied here: call ``policy.normalize_ports`` and
    ``policy.check_policy`` with the environment's settings.
    """
    limits = limits if limits is not None else platform_limits()
    data = safe_load(source, limits)
    data = interpolate(data, variables or {}, missing=missing, limits=limits)
    return parse_project(data, limits=limits)
