"""Per-container resources of a service and what a spec adds up to, and the quota rule
that judges them (pure: plain specs and numbers, no database)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from apps.compose import ComposeError
from apps.deployments.quotas import Limits, quota_problems
from apps.deployments.resources import (
    ContainerResources,
    SpecTotals,
    service_resources,
    spec_totals,
)
from apps.deployments.spec import build_spec, project_from_spec

MiB = 1 << 20


def environment(memory=64 * MiB, pids=128):
    return SimpleNamespace(
        slug="dev",
        publish_interface="127.0.0.1",
        policy_exceptions=[],
        default_memory_limit=memory,
        default_pids_limit=pids,
        log_max_size="10m",
        log_max_files=3,
    )


def resources(compose: str, service: str, env=None) -> ContainerResources:
    spec = build_spec(compose, {}, env or environment())
    return service_resources(spec, project_from_spec(spec), service)


def totals(compose: str, env=None) -> SpecTotals:
    spec = build_spec(compose, {}, env or environment())
    return spec_totals(spec, project_from_spec(spec))


def test_a_bare_service_gets_the_environment_defaults_and_no_cpu_limit():
    assert resources("services: {a: {image: x}}", "a") == ContainerResources(
        memory=64 * MiB, pids=128, cpus=None
    )


def test_deploy_limits_win_over_service_keys_and_defaults():
    compose = """
services:
  a:
    image: x
    mem_limit: 32m
    cpus: 0.25
    deploy: {resources: {limits: {memory: 256m, pids: 4000, cpus: "1.5"}}}
"""
    assert resources(compose, "a") == ContainerResources(memory=256 * MiB, pids=4000, cpus=1.5)


def test_service_keys_win_over_defaults():
    compose = "services: {a: {image: x, mem_limit: 32m, cpus: 0.5}}"
    assert resources(compose, "a") == ContainerResources(memory=32 * MiB, pids=128, cpus=0.5)


def test_environment_defaults_of_zero_mean_no_limit():
    got = resources("services: {a: {image: x}}", "a", environment(memory=0, pids=0))
    assert got == ContainerResources(memory=0, pids=0, cpus=None)


@pytest.mark.parametrize("pids", [0, -1])
def test_a_file_cannot_ask_unlimited_pids(pids):
    compose = f"services: {{a: {{image: x, deploy: {{resources: {{limits: {{pids: {pids}}}}}}}}}}}"
    with pytest.raises(ComposeError):
        build_spec(compose, {}, environment())


def test_totals_count_every_replica_and_skip_services_scaled_to_zero():
    compose = """
services:
  web: {image: x, cpus: 0.5, deploy: {replicas: 3}}
  worker: {image: x, mem_limit: 16m}
  off: {image: x, deploy: {replicas: 0}}
"""
    got = totals(compose)
    assert got.containers == 4
    assert got.memory == 3 * 64 * MiB + 16 * MiB
    assert got.cpus == 1.5
    assert got.unlimited_cpus == ["worker"] and got.unlimited_memory == []
    assert got.pids == {"web": 128, "worker": 128}


# --- the quota rule ---------------------------------------------------------------------------


def figures(containers=0, memory=0, cpus=0.0, pids=None, no_memory=(), no_cpus=()):
    return SpecTotals(
        containers=containers,
        memory=memory,
        cpus=cpus,
        pids=dict(pids or {}),
        unlimited_memory=list(no_memory),
        unlimited_cpus=list(no_cpus),
    )


def test_containers_over_quota_name_the_quota_and_the_count():
    problems = quota_problems(Limits(slug="acme", containers=10), figures(8), figures(12), 1, 1)
    assert problems == {
        "replicas": ["Tenant acme's quota allows 10 containers; this change would make 12."]
    }


def test_exactly_at_the_quota_passes():
    assert quota_problems(Limits(slug="acme", containers=10), figures(8), figures(10), 1, 1) == {}


def test_a_new_stack_past_the_stack_quota_is_refused():
    problems = quota_problems(Limits(slug="acme", stacks=2), figures(), figures(), 2, 3)
    assert problems == {
        "stacks": ["Tenant acme's quota allows 2 stacks; this change would make 3."]
    }


def test_scaling_down_while_over_a_lowered_quota_passes():
    assert quota_problems(Limits(slug="acme", containers=5), figures(12), figures(9), 1, 1) == {}


def test_memory_quota_counts_bytes_and_wants_a_limit_everywhere():
    limits = Limits(slug="acme", memory=512 * MiB)
    problems = quota_problems(limits, figures(), figures(memory=600 * MiB, no_memory=["db"]), 0, 1)
    assert problems["memory"] == [
        "Tenant acme's quota limits memory: service db needs a memory limit "
        "(deploy.resources.limits.memory or mem_limit).",
        "Tenant acme's quota allows 512 MiB of memory; this change would make 600 MiB.",
    ]


def test_cpu_quota_refuses_services_without_cpus_and_counts_the_others():
    limits = Limits(slug="acme", cpus=Decimal("2.00"))
    problems = quota_problems(limits, figures(), figures(cpus=2.5, no_cpus=["web"]), 0, 1)
    assert problems["cpus"] == [
        "Tenant acme's quota limits CPUs: service web must set cpus "
        "(deploy.resources.limits.cpus or cpus).",
        "Tenant acme's quota allows 2 CPUs; this change would make 2.5.",
    ]
    assert quota_problems(limits, figures(), figures(cpus=2.0), 0, 1) == {}


def test_pids_above_the_quota_or_unlimited_are_refused():
    limits = Limits(slug="acme", pids=1000)
    problems = quota_problems(limits, figures(), figures(pids={"a": 4000, "b": 0, "c": 512}), 0, 1)
    assert problems == {
        "pids": [
            "Tenant acme's quota allows 1000 processes per container; service a asks 4000.",
            "Tenant acme's quota allows 1000 processes per container; service b asks no limit.",
        ]
    }


def test_unlimited_quota_refuses_nothing():
    after = figures(10_000, 1 << 50, 4096.0, {"a": 0}, ["a"], ["a"])
    assert quota_problems(Limits(slug="acme"), figures(), after, 0, 10_000) == {}
