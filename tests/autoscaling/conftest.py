from tests.deployments.stack_fixtures import env_a, env_b  # noqa: F401
