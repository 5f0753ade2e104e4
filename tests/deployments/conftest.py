"""Fixtures of the deployments tests (stacks, templates, environments)."""

from tests.deployments.stack_fixtures import env_a, env_b, stack, template  # noqa: F401
