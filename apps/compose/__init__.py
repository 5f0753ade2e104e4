"""Compose support: safe loading, interpolation, typed parsing and the tenant policy.

Pure Python, no models and no Docker: the pipeline is
``safe_load`` -> ``interpolate`` -> ``parse_project`` -> ``normalize_ports`` -> ``check_policy``,
bundled by ``load_compose``. Every failure is a ``ComposeError`` carrying ``Problem``s.
"""

from apps.compose.errors import ComposeError, Problem
from apps.compose.limits import DEFAULT_LIMITS, Limits
from apps.compose.loader import load_compose

__all__ = ["DEFAULT_LIMITS", "ComposeError", "Limits", "Problem", "load_compose"]
