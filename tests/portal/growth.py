"""Rows made in bulk for the query-count tests: a tenant's stacks, services, containers,
events and templates, so that a page can be counted with a few of them and with more.

Rows only (no engine): the pages and API lists read the database, and the reconciler
that would normally write these rows is not what is measured.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.activity.models import Event
from apps.catalog.models import Template, TemplateVersion
from apps.deployments.models import Container, Revision, Service, Stack
from apps.hosts.models import Host

_serial = count(1)


def host() -> Host:
    return Host.objects.get_or_create(name="rows", endpoint="unix:///nonexistent.sock")[0]


def add_stacks(environment, number: int) -> list[Stack]:
    """`number` stacks in `environment`, each with a revision, two services and a
    container per service."""
    stacks = Stack.objects.bulk_create(
        Stack(tenant=environment.tenant, environment=environment, name=f"s{next(_serial)}")
        for _ in range(number)
    )
    revisions = Revision.objects.bulk_create(
        Revision(stack=s, number=1, spec={"services": {}}) for s in stacks
    )
    for stack, revision in zip(stacks, revisions, strict=True):
        stack.current_revision = revision
    Stack.objects.bulk_update(stacks, ["current_revision"])
    for stack in stacks:
        add_services(stack, 2, containers_each=1)
    return stacks


def add_services(stack: Stack, number: int, containers_each: int = 1) -> list[Service]:
    services = Service.objects.bulk_create(
        Service(stack=stack, name=f"svc{next(_serial)}", image="demo/api:1.0")
        for _ in range(number)
    )
    for service in services:
        add_containers(service, containers_each)
    return services


def add_containers(service: Service, number: int) -> None:
    where = host()
    Container.objects.bulk_create(
        Container(
            stack_id=service.stack_id,
            service=service,
            host=where,
            engine_id=f"{next(_serial):064x}",
            name=f"c{next(_serial)}",
            replica=replica,
            state="running",
            health="healthy",
            ports=[{"container_port": 80, "host_port": 8000 + replica, "host_ip": "127.0.0.1"}],
        )
        for replica in range(1, number + 1)
    )


def add_events(tenant, number: int, stack: Stack | None = None, actor=None) -> None:
    """`number` events of `tenant`, of several actions, types and actors."""
    actions = ["stack.deploy", "stack.stop", "service.scale", "container.restart"]
    Event.objects.bulk_create(
        Event(
            tenant=tenant,
            actor=actor if n % 2 else None,
            actor_name=actor.username if actor is not None and n % 2 else f"user{n}",
            action=actions[n % len(actions)] if n < 4 else f"custom.action{next(_serial)}",
            object_type="stack" if stack is not None else "environment",
            object_id=str(stack.pk) if stack is not None else str(n),
            object_repr=f"object {n}",
            outcome="failure" if n % 3 == 0 else "success",
            data={"stack": stack.pk} if stack is not None else {},
        )
        for n in range(number)
    )


def add_templates(tenant, number: int) -> None:
    """`number` templates published by `tenant`, each with a version."""
    templates = Template.objects.bulk_create(
        Template(slug=f"t{n}", name=f"App {n}", category="other", publisher=tenant)
        for n in (next(_serial) for _ in range(number))
    )
    TemplateVersion.objects.bulk_create(
        TemplateVersion(template=t, version="1.0.0", compose="services: {}\n", content_hash="0")
        for t in templates
    )


def queries(client: Client, url: str) -> int:
    """The queries of one GET of `url` (answered 200), after one warm-up GET."""
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as captured:
        answer = client.get(url)
    assert answer.status_code == 200, answer.content[:500]
    return len(captured)


def counts_before_and_after(client: Client, url: str, grow: Callable[[], None]) -> tuple:
    """(queries with the rows present, queries after `grow()` added more)."""
    before = queries(client, url)
    grow()
    return before, queries(client, url)
