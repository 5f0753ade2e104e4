"""Bounds on what a compose file may ask for, against hostile or accidental giants.

Defaults are generous for real stacks (the biggest built-in template has a handful of
services) and small enough that parsing a worst-case file stays well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Every bound in one place so an environment could tune them later."""

    max_bytes: int = 256 * 1024
    max_depth: int = 32
    max_nodes: int = 100_000
    max_services: int = 50
    max_ports: int = 100
    max_volumes: int = 100
    max_items: int = 1000
    max_string: int = 16 * 1024
    max_key: int = 256
    max_replicas: int = 100
    max_interpolated: int = 4 * 1024 * 1024


DEFAULT_LIMITS = Limits()
