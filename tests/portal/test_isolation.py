"""Isolation, from the first route: every URL of the URL conf, walked with tenant A's objects.

The walker reads the whole URL conf (HTML pages, the API router, allauth), so a route
added later is tested without editing this file. For each route it fills the URL's
kwargs with tenant A's object of the view's `model`, then calls every method the view
accepts as an outsider (a member of tenant B) with a session, as the same outsider with
a Bearer token (API routes) and anonymously. Object routes must answer 404, 403, 401,
405 or a redirect to the login page; every route must answer without a 500 and without
a trace of tenant A's data; afterwards tenant A's rows must be exactly as they were.

Websockets likewise: every route of the production ASGI router (read through its
middleware) is opened with tenant A's object by tenant A's owner and the outsider from
foreign origins (another port, scheme or host, `null`: the handshake must be refused),
and by the outsider and anonymously from the portal's own origin (closed 4401/4403/4404).

Convention enforced here: a route of our own apps whose URL has kwargs is a class-based
view (or DRF viewset) with a `model` attribute, so the walker knows what to fill in; a
websocket consumer has a `model` naming what its URL's pk is.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.forms import fields as form_fields
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern
from django.utils import timezone
from django.utils.regex_helper import normalize
from rest_framework import serializers

from apps.accounts import services as token_services
from apps.accounts.models import ApiToken
from apps.activity.models import Event
from apps.activity.services import record_event
from apps.alerts import services as alert_services
from apps.alerts.models import Alert, Delivery, Silence
from apps.autoscaling.models import Autoscaler
from apps.catalog.models import Template, TemplateVersion
from apps.core.roles import Role
from apps.deployments import routes as route_services
from apps.deployments import secret_store
from apps.deployments import services as stack_services
from apps.deployments.models import (
    Container,
    HostnameClaim,
    Revision,
    Rollout,
    Secret,
    Service,
    Stack,
)
from apps.deployments.models import Route as RouteModel  # `Route` is the walker's URL route
from apps.hosts.models import Host, SwarmNode
from apps.logs.models import LogLine, LogRetention, LogSource
from apps.monitoring.models import ContainerSample, Series
from apps.registry.models import RegistryEvent, Repository, RobotAccount, TenantRegistryQuota
from apps.registry.services import create_robot
from apps.tenants import services as tenant_services
from apps.tenants.middleware import SESSION_ENVIRONMENT, SESSION_TENANT
from apps.tenants.models import Environment, Invitation, Membership, Tenant
from apps.traffic.models import Certificate
from tests.fixtures.live import run

# Routes not walked, and why. Keep this tiny: everything else is walked.
SKIPPED_PREFIXES = (
    "admin/",  # Django admin: staff only, see test_admin_site_refuses_non_staff
    "static/",  # static files and uploads carry no tenant data
    "media/",
    "api/v1/schema/",  # the OpenAPI schema and its docs pages describe, they hold no data
    "api/v1/docs/",
    "api/v1/redoc/",
)
OUR_PACKAGES = ("apps.", "paas.")
METHODS = ("get", "post", "put", "patch", "delete")
REDIRECTS = (301, 302, 303, 307, 308)
REFUSALS = (401, 403, 404, 405)
SECRET = "acme-secret"  # every name, e-mail and text of tenant A contains it


# --- the URL conf ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    display: str  # e.g. "api/v1/tenants/<slug>/"
    regex: str  # the full regex, from the root
    name: str  # e.g. "api:tenant-detail"
    callback: Callable

    @property
    def kwarg_names(self) -> tuple[str, ...]:
        return tuple(re.compile(self.regex).groupindex)

    @property
    def object_kwargs(self) -> tuple[str, ...]:
        """The kwargs naming an object (a `format` suffix names none)."""
        return tuple(name for name in self.kwarg_names if name != "format")

    @property
    def view_class(self) -> type | None:
        return getattr(self.callback, "view_class", None) or getattr(self.callback, "cls", None)

    @property
    def is_api(self) -> bool:
        return hasattr(self.callback, "cls")

    @property
    def is_ours(self) -> bool:
        module = getattr(self.view_class or self.callback, "__module__", "") or ""
        return module.startswith(OUR_PACKAGES)

    @property
    def model(self) -> type[models.Model] | None:
        cls = self.view_class
        if cls is None:
            return None
        model = getattr(cls, "model", None)
        if model is None:
            model = getattr(getattr(cls, "queryset", None), "model", None)
        return model if isinstance(model, type) and issubclass(model, models.Model) else None

    @property
    def methods(self) -> list[str]:
        actions = getattr(self.callback, "actions", None)
        if actions:
            return [m for m in METHODS if m in actions]
        cls = self.view_class
        if cls is not None:
            return [m for m in METHODS if m in cls.http_method_names and hasattr(cls, m)]
        return ["get", "post"]  # a function view: try a read and a write

    def action_for(self, method: str) -> str | None:
        return (getattr(self.callback, "actions", None) or {}).get(method)


def _display(pattern) -> str:
    """A readable route: DRF's `^tenants/(?P<pk>[^/.]+)/$` becomes `tenants/<pk>/`."""
    text = str(pattern)
    if isinstance(pattern, RegexPattern):
        text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", text)
        text = text.lstrip("^").rstrip("$").replace("\\.", ".").replace("/?", "/")
    return text


def walk_urlconf(resolver=None, regex: str = "", display: str = "", namespace: str = ""):
    """Every URLPattern under the root resolver, with its full regex and display route."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        piece = entry.pattern.regex.pattern.removeprefix("^")
        shown = display + _display(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            yield from walk_urlconf(entry, regex + piece, shown, inner)
        else:
            name = ":".join(filter(None, [namespace, entry.name])) if entry.name else ""
            yield Route(shown, regex + piece, name, entry.callback)


def is_skipped(route: Route) -> bool:
    return route.display.startswith(SKIPPED_PREFIXES)


def all_routes() -> list[Route]:
    return list(walk_urlconf())


def walked_routes() -> list[Route]:
    return [route for route in all_routes() if not is_skipped(route)]


def pytest_generate_tests(metafunc):
    if "route" in metafunc.fixturenames:
        routes = walked_routes()
        seen: dict[str, int] = {}
        ids = []
        for route in routes:
            seen[route.display] = seen.get(route.display, 0) + 1
            suffix = f"#{seen[route.display]}" if seen[route.display] > 1 else ""
            ids.append((route.display or "/") + suffix)
        metafunc.parametrize("route", routes, ids=ids)
    if "socket_route" in metafunc.fixturenames:
        sockets = list(walk_websockets())
        metafunc.parametrize("socket_route", sockets, ids=[s.display for s in sockets])


# --- tenant A, rich in data, and the outsider --------------------------------------------------


@dataclass
class World:
    tenant: Tenant
    environment: Environment
    membership: Membership
    invitation: Invitation
    invitation_raw: str
    token: ApiToken
    token_raw: str
    event: Event
    host: Host
    people: list
    outsider: Any
    superuser: Any
    outsider_token_raw: str
    objects: dict = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        """Strings that must never reach the outsider (checked case-insensitively)."""
        return [SECRET, self.token_raw, self.invitation_raw, self.token.prefix]

    def object_for(self, model: type[models.Model]) -> models.Model | None:
        """Tenant A's object of `model`: a known one, else any row tied to tenant A."""
        if model in self.objects:
            return self.objects[model]
        for fk in tenant_links(model):
            found = model._default_manager.filter(**{fk: self.tenant}).order_by("pk").first()
            if found is not None:
                return found
        return None


def tenant_links(model: type[models.Model]) -> list[str]:
    """Lookups from `model` to its tenant: a FK to Tenant, or to an Environment or a Stack
    (services, containers, revisions, rollouts)."""
    links = []
    for f in model._meta.get_fields():
        if not (f.is_relation and f.many_to_one and f.concrete):
            continue
        if f.related_model is Tenant:
            links.append(f.name)
        elif f.related_model in (Environment, Stack):
            links.append(f"{f.name}__tenant")
    return links


@pytest.fixture
def world(db, make_user, outsider, tenant_b, superuser) -> World:
    olivia = make_user("olivia.acme-secret", email="olivia@acme-secret.test")
    marcus = make_user("marcus.acme-secret", email="marcus@acme-secret.test")
    vera = make_user("vera.acme-secret", email="vera@acme-secret.test")
    tenant = tenant_services.create_tenant(
        actor=olivia,
        slug="acme",
        name="Rockets acme-secret-tenant",
        description="acme-secret-description",
    )
    for env in Environment.objects.filter(tenant=tenant):
        env.name = f"acme-secret-env-{env.slug}"
        env.description = "acme-secret-env-description"
        env.save()
    environment = tenant_services.create_environment(
        actor=olivia, tenant=tenant, slug="qa", name="acme-secret-env-qa"
    )
    membership = Membership.objects.create(tenant=tenant, user=marcus, role=Role.MEMBER)
    Membership.objects.create(tenant=tenant, user=vera, role=Role.VIEWER)
    invitation, invitation_raw = tenant_services.invite(
        actor=olivia, tenant=tenant, email="invitee@acme-secret.test", role=Role.ADMIN
    )
    token, token_raw = token_services.create_token(
        actor=olivia, name="acme-secret-token", tenant=tenant
    )
    host = Host.objects.create(
        name="acme-secret-host",
        endpoint="tcp://acme-secret-host.invalid:2376",
        labels={"acme-secret-label": "yes"},
        last_error="acme-secret-error",
    )
    environment.hosts.add(host)
    # A Swarm cluster and its node: the node routes (HTML and API) must hide them too.
    swarm_host = Host.objects.create(
        name="acme-secret-swarm",
        kind=Host.Kind.SWARM,
        endpoint="tcp://acme-secret-swarm.invalid:2377",
    )
    SwarmNode.objects.create(
        host=swarm_host,
        node_id="acmesecretnode",
        hostname="acme-secret-node",
        role="worker",
        availability="active",
        state="ready",
        labels={"acme-secret-zone": "a"},
    )
    stack = stack_services.create_stack(
        olivia,
        environment,
        "acme-secret-shop",
        compose="services:\n  web:\n    image: acme-secret/web:1\n"
        "    environment: {MOTTO: acme-secret-motto}\n",
    )
    service = stack.services.get(name="web")
    container = Container.objects.create(
        stack=stack,
        service=service,
        host=host,
        engine_id="acme-secret-engine-id",
        name="acme-secret-shop-web-1",
        revision=1,
        state="running",
    )
    route = route_services.create_route(
        olivia, service, hostname="acme-secret-shop.example.com", path="/acme-secret", port=80
    )
    rollout = Rollout.objects.create(
        stack=stack,
        service="web",
        strategy=Rollout.Strategy.CANARY,
        state=Rollout.State.CANARY,
        from_revision=1,
        to_revision=1,
        canary_weight=20,
        message="acme-secret-rollout",
    )
    event = record_event(
        "acme.secret", actor=olivia, tenant=tenant, obj=environment, message="acme-secret-event"
    )
    # The store's value must never reach the outsider (nor a config's: SECRET is in both).
    stored_secret = secret_store.create_entry(
        olivia, environment, kind="secret", name="acme-secret-db", value="acme-secret-value"
    )
    secret_store.create_entry(
        olivia, environment, kind="config", name="acme-secret-site", value="acme-secret-conf"
    )
    _, outsider_token_raw = token_services.create_token(actor=outsider, name="oscar-cli")
    template = Template.objects.create(
        slug="acme-secret-app",
        name="acme-secret-template",
        category="other",
        description="acme-secret-template-description",
        publisher=tenant,
        visibility=Template.Visibility.TENANT,
    )
    template_version = TemplateVersion.objects.create(
        template=template,
        version="1.0.0",
        compose="services: {web: {image: acme-secret/web:1}}\n",
        content_hash="0" * 64,
    )
    repository = Repository.objects.create(
        tenant=tenant, name="acme-secret-image", description="acme-secret-repo"
    )
    robot, _ = create_robot(
        actor=olivia, tenant=tenant, name="acme-secret-ci", description="acme-secret-robot"
    )
    registry_event = RegistryEvent.objects.create(
        tenant=tenant,
        repository=repository,
        action="pull",
        tag="acme-secret-tag",
        actor="olivia.acme-secret",
        event_id="acme-secret-event-id",
        counted=True,
    )
    registry_quota = TenantRegistryQuota.objects.create(tenant=tenant, pull_alert_threshold=3)
    Certificate.objects.create(  # found by tenant link: /api/v1/certificates/<pk>/
        tenant=tenant,
        hostname="acme-secret-tls.example.com",
        kind=Certificate.Kind.ACME,
        state=Certificate.State.FAILED,
        error="acme-secret-certificate-error",
    )
    # Alerting: a channel, a rule, a firing alert with its delivery, and a silence.
    channel, _ = alert_services.create_channel(
        olivia, tenant, name="acme-secret-hook", kind="email", target="ops@acme-secret.test"
    )
    alert_rule = alert_services.create_rule(
        olivia,
        tenant,
        {
            "name": "acme-secret-rule",
            "kind": "registry_quota",
            "threshold": 90,
            "channels": [channel],
        },
    )
    moment = timezone.now()
    alert = Alert.objects.create(
        tenant=tenant,
        rule=alert_rule,
        subject_key="registry",
        subject="acme-secret-subject",
        state=Alert.State.FIRING,
        message="acme-secret-alert",
        started_at=moment,
        fired_at=moment,
        evaluated_at=moment,
    )
    Delivery.objects.create(
        tenant=tenant,
        channel=channel,
        alert=alert,
        event="firing",
        next_attempt_at=moment,
        payload={"message": "acme-secret-payload"},
        last_error="acme-secret-delivery-error",
    )
    Silence.objects.create(
        tenant=tenant,
        rule=alert_rule,
        ends_at=moment + timedelta(hours=1),
        comment="acme-secret-silence",
    )
    # Metrics of tenant A's container, fresh: the Prometheus endpoints would show them.
    now = timezone.now().replace(microsecond=0)
    metered = Series.objects.create(
        kind=Series.Kind.CONTAINER,
        key=f"c{host.pk}:acme-secret-engine-id",
        tenant=tenant,
        tenant_slug=tenant.slug,
        environment_slug=environment.slug,
        stack_pk=stack.pk,
        stack_name=stack.name,
        service_name="web",
        container_pk=container.pk,
        name=container.name,
        host_name=host.name,
        first_seen_at=now,
        last_seen_at=now,
    )
    ContainerSample.objects.create(series=metered, tier=0, at=now, memory_bytes=4242)
    # The service's autoscaling, with a decision on record (its page and API list them).
    scaler = Autoscaler.objects.create(
        tenant=tenant, service=service, metric="requests", target=7, last_decision="acme-secret"
    )
    record_event(
        "autoscaling.scale_out", tenant=tenant, obj=service, message="acme-secret-decision"
    )
    # Collected log lines (the Logs page and /api/v1/logs/ must never show them to B).
    log_source = LogSource.objects.create(
        host=host,
        engine_id="acme-secret-engine-id",
        tenant=tenant,
        environment=environment,
        stack_pk=stack.pk,
        stack=stack.name,
        service="web",
        container=container.name,
    )
    log_line = LogLine.objects.create(
        source=log_source,
        tenant=tenant,
        environment=environment,
        stack=stack.name,
        service="web",
        container=container.name,
        ts=timezone.now(),
        text="payment acme-secret-log-line card=4242",
    )
    log_retention = LogRetention.objects.create(environment=environment, days=3)
    result = World(
        tenant=tenant,
        environment=environment,
        membership=membership,
        invitation=invitation,
        invitation_raw=invitation_raw,
        token=token,
        token_raw=token_raw,
        event=event,
        host=host,
        people=[olivia, marcus, vera],
        outsider=outsider,
        superuser=superuser,
        outsider_token_raw=outsider_token_raw,
    )
    result.objects = {
        Tenant: tenant,
        Environment: environment,
        Membership: membership,
        Invitation: invitation,
        ApiToken: token,
        Event: event,
        Host: host,
        Stack: stack,
        Service: service,
        Revision: stack.current_revision,
        Container: container,
        RouteModel: route,
        HostnameClaim: HostnameClaim.objects.get(hostname=route.hostname),
        Rollout: rollout,
        Secret: stored_secret,
        Autoscaler: scaler,
        Template: template,
        TemplateVersion: template_version,
        Repository: repository,
        RobotAccount: robot,
        RegistryEvent: registry_event,
        TenantRegistryQuota: registry_quota,
        LogSource: log_source,
        LogLine: log_line,
        LogRetention: log_retention,
        get_user_model(): olivia,
    }
    return result


def snapshot(world: World) -> dict[str, Any]:
    """Every row of tenant A (and every host), as plain values, to compare afterwards."""
    user_model = get_user_model()
    people = [p.pk for p in world.people]
    state: dict[str, Any] = {
        "tenant": list(Tenant.objects.filter(pk=world.tenant.pk).values()),
        "hosts": list(Host.objects.order_by("pk").values()),
        "swarm nodes": list(SwarmNode.objects.order_by("pk").values()),
        "host links": sorted(world.environment.hosts.values_list("pk", flat=True)),
        "people": list(
            user_model.objects.filter(pk__in=people)
            .order_by("pk")
            .values(*[f.name for f in user_model._meta.concrete_fields if f.name != "last_login"])
        ),
        "tokens of people": list(ApiToken.objects.filter(user__in=people).order_by("pk").values()),
        "events": list(
            Event.objects.filter(tenant=world.tenant).order_by("pk").values("pk", "action")
        ),
    }
    for model in tenant_owned_models():
        if model is Event:
            continue
        query = models.Q()
        for link in tenant_links(model):
            query |= models.Q(**{link: world.tenant})
        rows = model._default_manager.filter(query).order_by("pk").values()
        state[model._meta.label] = list(rows)
    return state


def tenant_owned_models() -> list[type[models.Model]]:
    from django.apps import apps

    return [
        m for m in apps.get_models() if m.__module__.startswith(OUR_PACKAGES) and tenant_links(m)
    ]


def changes(before: dict, after: dict, world: World) -> list[str]:
    found = []
    for key in before:
        if key == "events":
            continue
        if before[key] != after[key]:
            found.append(
                f"tenant A data changed: {key}\n    before {before[key]}\n    after  {after[key]}"
            )
    old = {row["pk"] for row in before["events"]}
    new_success = Event.objects.filter(tenant=world.tenant, outcome=Event.Outcome.SUCCESS).exclude(
        pk__in=old
    )
    if new_success.exists() or not old <= {row["pk"] for row in after["events"]}:
        found.append(
            "tenant A's activity changed: new successful events "
            f"{list(new_success.values('action', 'actor_name', 'message'))}"
        )
    return found


# --- filling a route's kwargs ------------------------------------------------------------------


PLACEHOLDERS = ("abc", "1", "00000000-0000-4000-8000-000000000000")


class ConventionError(Exception):
    """A route the walker cannot fill: the message tells the developer what to add."""


def _attr(obj: models.Model, path: str) -> Any:
    for part in path.split("__"):
        obj = getattr(obj, part)
    return obj


def _models_by_name() -> dict[str, type[models.Model]]:
    from django.apps import apps

    return {m._meta.model_name: m for m in apps.get_models()}


def fill_kwargs(route: Route, world: World) -> tuple[dict[str, Any], set[str]]:
    """Values for the route's kwargs, and the names that got a placeholder."""
    names = route.object_kwargs
    values: dict[str, Any] = {"format": "json"} if "format" in route.kwarg_names else {}
    if not names:
        return values, set()
    model = route.model
    if model is None and route.is_ours:
        raise ConventionError(
            f"Route {route.display!r} ({route.name or route.callback}) has URL kwargs {names} "
            "but no discoverable model: make it a class-based view (or DRF viewset) and set "
            "`model = <Model>` on it, so the isolation test can fill the kwargs with tenant A's "
            "object."
        )
    obj = world.object_for(model) if model is not None else None
    if model is not None and obj is None:
        raise ConventionError(
            f"Route {route.display!r} serves {model._meta.label}, but tenant A has no such "
            "object: add one to the `world` fixture in tests/portal/test_isolation.py."
        )
    placeholders = set()
    for name in names:
        value = kwarg_value(route, name, obj, world)
        if value is None:
            placeholders.add(name)
        else:
            values[name] = value
    return values, placeholders


def kwarg_value(route: Route, name: str, obj: models.Model | None, world: World) -> Any:
    """The value of one kwarg from tenant A's object, or None when it names nothing known."""
    cls = route.view_class
    if obj is not None:
        if route.is_api:
            lookup = getattr(cls, "lookup_field", "pk") or "pk"
            if name == (getattr(cls, "lookup_url_kwarg", None) or lookup):
                return _attr(obj, lookup)
        if name == getattr(cls, "pk_url_kwarg", "pk") or name in ("pk", "id"):
            return obj.pk
        if name == getattr(cls, "slug_url_kwarg", "slug"):
            return getattr(obj, getattr(cls, "slug_field", "slug"), None)
    match = re.fullmatch(r"(?P<model>[a-z]+)_(?P<attr>pk|id|slug)", name)
    model_name = match["model"] if match else name
    other = _models_by_name().get(model_name)
    other_obj = world.object_for(other) if other is not None else None
    if other_obj is not None:
        attr = "slug" if match and match["attr"] == "slug" else "pk"
        return getattr(other_obj, attr)
    return None


def build_url(route: Route, values: dict[str, Any], placeholders: set[str]) -> str:
    """The URL of the route with these values, checked to resolve back to the route."""
    tried = []
    formats = ["json", ".json"] if "format" in values else [None]
    for filler, suffix in itertools.product(PLACEHOLDERS, formats):
        full = {**values, **{name: filler for name in placeholders}}
        if suffix:
            full["format"] = suffix
        for pattern, params in normalize(route.regex):
            if set(params) != set(route.kwarg_names):
                continue
            url = "/" + pattern % {k: str(v) for k, v in full.items()}
            tried.append(url)
            if not re.fullmatch(route.regex, url[1:]):
                continue
            try:
                match = resolve(url)
            except Resolver404:
                continue
            if match.func is route.callback or not placeholders:
                return url
    raise ConventionError(f"Cannot build a URL for {route.display!r} (tried {tried}).")


# --- request bodies ----------------------------------------------------------------------------


def junk_body(world: World, api: bool) -> dict[str, Any]:
    """Fields an attacker would send: another tenant, higher roles, staff flags."""
    tenant = world.tenant.slug if api else world.tenant.pk
    return {
        "tenant": tenant,
        "environment": world.environment.pk,
        "owner": world.people[0].pk,
        "user": world.people[0].pk,
        "role": Role.OWNER,
        "is_staff": True,
        "is_superuser": True,
        "junk": "1",
    }


def plausible_body(route: Route, method: str, world: World) -> dict[str, Any] | None:
    """A body built from the view's own form or serializer, pointing at tenant A."""
    fields = form_or_serializer_fields(route, method)
    if not fields:
        return None
    return {name: plausible_value(name, f, world) for name, f in fields.items()}


def form_or_serializer_fields(route: Route, method: str) -> dict[str, Any]:
    cls = route.view_class
    if cls is None:
        return {}
    if route.is_api:
        try:
            view = cls()
            view.action, view.request, view.format_kwarg, view.kwargs = (
                route.action_for(method),
                None,
                None,
                {},
            )
            serializer_class = view.get_serializer_class()
            return {n: f for n, f in serializer_class().fields.items() if not f.read_only}
        except Exception:  # noqa: BLE001 -- no serializer to learn from: junk only
            return {}
    form_class = getattr(cls, "form_class", None)
    return dict(getattr(form_class, "base_fields", {}) or {})


def plausible_value(name: str, f: Any, world: World) -> Any:
    related = getattr(getattr(f, "queryset", None), "model", None)
    if related is not None:
        obj = world.object_for(related)
        if obj is not None:
            slug_field = getattr(f, "slug_field", None)
            return getattr(obj, slug_field) if slug_field else obj.pk
    choices = getattr(f, "choices", None)
    if isinstance(f, serializers.BooleanField | form_fields.BooleanField):
        return "read_only" not in name
    if choices:
        keys = [k for k, _ in (choices.items() if isinstance(choices, dict) else choices) if k]
        return keys[-1] if keys else ""
    if isinstance(f, serializers.EmailField | form_fields.EmailField):
        return "oscar-was-here@example.test"
    if isinstance(f, serializers.IntegerField | form_fields.IntegerField):
        return 1
    if "slug" in name:
        return "oscar-new"
    return "oscar-was-here"


# --- the three callers -------------------------------------------------------------------------

_handler: list = []


def new_client(**defaults: Any) -> Client:
    """A fresh client (no cookies) sharing one request handler.

    Loading the middleware costs about half a second (WhiteNoise indexes every static
    file), and the walk makes a thousand requests, each from a clean client.
    """
    client = Client(**defaults)
    if _handler:
        client.handler = _handler[0]
    else:
        _handler.append(client.handler)
    return client


def session_client(world: World) -> Client:
    """The outsider signed in, with tenant A's ids planted in the session."""
    client = new_client()
    client.force_login(world.outsider, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[SESSION_TENANT] = world.tenant.pk
    session[SESSION_ENVIRONMENT] = world.environment.pk
    session.save()
    return client


def callers(route: Route, world: World) -> Iterator[tuple[str, Callable[[], Client]]]:
    yield "outsider (session)", lambda: session_client(world)
    if route.is_api:
        header = f"Bearer {world.outsider_token_raw}"
        yield "outsider (token)", lambda: new_client(HTTP_AUTHORIZATION=header)
    yield "anonymous", new_client


@dataclass
class Attempt:
    method: str
    url: str
    who: str
    body: dict | None = None
    headers: dict = field(default_factory=dict)

    def label(self) -> str:
        extra = f" body={json.dumps(self.body, default=str)}" if self.body is not None else ""
        shown = "".join(f" {k.removeprefix('HTTP_')}={v}" for k, v in self.headers.items())
        return f"{self.method.upper()} {self.url} as {self.who}{shown}{extra}"


def attempts(route: Route, world: World, url: str) -> Iterator[tuple[Attempt, Callable]]:
    has_object = bool(route.object_kwargs)
    for who, make_client in callers(route, world):
        for method in route.methods:
            for attempt in method_attempts(route, world, url, who, method, has_object):
                yield attempt, make_client


def method_attempts(route, world, url, who, method, has_object) -> Iterator[Attempt]:
    if method == "get":
        yield Attempt("get", url, who)
        if who != "anonymous" and not has_object:
            env = world.environment
            yield Attempt("get", f"{url}?tenant={world.tenant.slug}&environment={env.pk}", who)
            query = urlencode({"tenant": world.tenant.pk, "tenant_id": world.tenant.pk, "q": "a"})
            yield Attempt("get", f"{url}?{query}", who)
        if route.is_api and who == "outsider (session)" and "format" not in route.kwarg_names:
            yield Attempt("get", url, who, headers={"HTTP_ACCEPT": "text/html"})
        if not route.is_api and who == "outsider (session)":
            htmx = {"HTTP_HX_REQUEST": "true"}
            yield Attempt("get", f"{url}?tenant={world.tenant.slug}", who, headers=htmx)
        return
    if method == "delete":
        yield Attempt("delete", url, who)
        return
    plausible = plausible_body(route, method, world)
    if plausible:
        yield Attempt(method, url, who, plausible)
    yield Attempt(method, url, who, junk_body(world, route.is_api))


def send(client: Client, route: Route, attempt: Attempt):
    """One request; an exception (a 500 in production) comes back as its text."""
    kwargs: dict[str, Any] = dict(attempt.headers)
    if attempt.body is not None:
        if route.is_api:
            kwargs.update(data=json.dumps(attempt.body), content_type="application/json")
        elif attempt.method == "post":
            kwargs["data"] = attempt.body
        else:
            kwargs.update(
                data=urlencode(attempt.body), content_type="application/x-www-form-urlencoded"
            )
    try:
        with transaction.atomic():
            return getattr(client, attempt.method)(attempt.url, **kwargs), None
    except Exception as exc:  # noqa: BLE001 -- reported as a failure, with its text
        return None, f"{type(exc).__name__}: {str(exc)[:300]}"


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def leaks(response, world: World) -> list[str]:
    text = body_of(response) + " " + str(response.get("Location", ""))
    lowered = text.lower()
    return [s for s in world.secrets if s and s.lower() in lowered]


def judge(route: Route, attempt: Attempt, response, error: str | None, world: World) -> str | None:
    """What is wrong with this answer, or None."""
    if error is not None:
        return f"raised {error}"
    status = response.status_code
    leaked = leaks(response, world)
    if leaked:
        return f"{status}, and the answer contains tenant A's data: {leaked}"
    if status >= 500:
        return f"{status} server error"
    is_redirect = status in REDIRECTS
    target = urlsplit(response.get("Location", "")).path if is_redirect else ""
    login = resolve_url("account_login")
    if route.is_api and attempt.who == "anonymous" and status not in (401, 403):
        return f"{status}: anonymous API requests must get 401 or 403"
    if route.object_kwargs and (route.model is not None or route.is_ours):
        if status in REFUSALS or (is_redirect and target == login):
            return None
        shown = f"{status} -> {response.get('Location')}" if is_redirect else str(status)
        return f"{shown}: tenant A's object must be 404/403/401/405 or a redirect to login"
    return None


def positive_control(route: Route, url: str, world: World) -> list[str]:
    """The URL must find tenant A's object for its owner (or a platform admin).

    Without this, a wrongly filled URL would answer 404 to everybody and the walk
    would pass without testing anything.
    """
    if "get" not in route.methods or not route.object_kwargs:
        return []
    statuses = []
    for user in (world.people[0], world.superuser):
        client = new_client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        response, error = send(client, route, Attempt("get", url, user.username))
        if error is not None:
            return [f"  GET {url} as {user.username} (positive control)\n      -> raised {error}"]
        if response.status_code not in (404, 401, 403):
            return []
        statuses.append(response.status_code)
    return [
        f"  GET {url} as tenant A's owner and as a superuser -> {statuses}: the walker filled "
        "the URL with something that finds nothing, so its refusals prove nothing "
        "(check the view's `model` and URL kwarg names)"
    ]


def home_after_write(client: Client, world: World) -> str | None:
    """A write must not have moved the outsider's session into tenant A (the switcher)."""
    try:
        response = client.get(resolve_url(settings.LOGIN_REDIRECT_URL))
    except Exception as exc:  # noqa: BLE001 -- reported as a failure, with its text
        return f"raised {type(exc).__name__}: {str(exc)[:300]}"
    leaked = leaks(response, world)
    return f"{response.status_code}, and it shows tenant A's data: {leaked}" if leaked else None


# --- the walk ----------------------------------------------------------------------------------


def test_route_isolates_tenant_a(route: Route, world: World):
    try:
        values, placeholders = fill_kwargs(route, world)
        url = build_url(route, values, placeholders)
    except ConventionError as exc:
        pytest.fail(str(exc), pytrace=False)
    problems = [] if placeholders else positive_control(route, url, world)
    before = snapshot(world)
    for attempt, make_client in attempts(route, world, url):
        client = make_client()
        response, error = send(client, route, attempt)
        problem = judge(route, attempt, response, error, world)
        if problem:
            problems.append(f"  {attempt.label()}\n      -> {problem}")
        if attempt.method != "get" and attempt.who == "outsider (session)":
            problem = home_after_write(client, world)
            if problem:
                problems.append(f"  the home page after {attempt.label()}\n      -> {problem}")
    problems += [f"  {c}" for c in changes(before, snapshot(world), world)]
    if problems:
        pytest.fail(
            f"Route {route.display!r} (name {route.name!r}, model "
            f"{route.model and route.model._meta.label}) fails the isolation walk:\n"
            + "\n".join(problems),
            pytrace=False,
        )


# --- the walker itself, the admin site and the request bodies ---------------------------------


def test_walker_sees_the_whole_urlconf():
    """The walk reaches nested includes: allauth, the API router and its detail routes."""
    shown = {route.display for route in walked_routes()}
    for expected in ("accounts/login/", "tenants/", "activity/", "settings/tokens/"):
        assert expected in shown, f"{expected} is missing from the walk: {sorted(shown)}"
    for resource in ("tenants", "environments", "hosts", "events", "tokens"):
        assert f"api/v1/{resource}/" in shown, f"api/v1/{resource}/ is not walked"
        detail = [s for s in shown if s.startswith(f"api/v1/{resource}/<")]
        assert detail, f"no detail route of api/v1/{resource}/ is walked"
    assert sum(1 for r in walked_routes() if r.object_kwargs and r.is_ours) >= 10


def test_only_admin_static_and_schema_are_skipped():
    skipped = {route.display for route in all_routes() if is_skipped(route)}
    assert all(s.startswith(SKIPPED_PREFIXES) for s in skipped)
    assert any(s.startswith("admin/") for s in skipped)
    assert len(SKIPPED_PREFIXES) <= 6, "keep the skip list tiny: walk new routes instead"


def test_admin_site_refuses_non_staff(world):
    admin_login = resolve_url("admin:login")
    change = f"/admin/tenants/tenant/{world.tenant.pk}/change/"
    for client in (session_client(world), new_client()):
        for url in ("/admin/", change, "/admin/tenants/tenant/"):
            response = client.get(url)
            assert response.status_code == 302, url
            assert urlsplit(response["Location"]).path == admin_login, url
            assert not leaks(response, world)


def api_client(world: World, token: bool) -> Client:
    if token:
        return new_client(HTTP_AUTHORIZATION=f"Bearer {world.outsider_token_raw}")
    return session_client(world)


@pytest.mark.parametrize("token", [False, True], ids=["session", "token"])
def test_environment_in_a_foreign_tenant_is_refused(world, token):
    response = api_client(world, token).post(
        "/api/v1/environments/",
        {"tenant": "acme", "slug": "evil", "name": "evil"},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "tenant" in response.json()
    assert not leaks(response, world)
    assert not Environment.objects.filter(tenant=world.tenant, slug="evil").exists()
    assert not Environment.objects.filter(slug="evil").exists()


@pytest.mark.parametrize("token", [False, True], ids=["session", "token"])
@pytest.mark.parametrize(
    "extra",
    [
        {"owner": "olivia.acme-secret"},
        {"is_staff": True},
        {"is_superuser": True},
        {"role": "owner"},
        {"tenant": "acme"},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_tenant_create_refuses_privileged_fields(world, token, extra):
    body = {"slug": "evil", "name": "Evil", **extra}
    response = api_client(world, token).post(
        "/api/v1/tenants/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert next(iter(extra)) in response.json()
    assert not Tenant.objects.filter(slug="evil").exists()
    world.outsider.refresh_from_db()
    assert not (world.outsider.is_staff or world.outsider.is_superuser)


@pytest.mark.parametrize("token", [False, True], ids=["session", "token"])
def test_token_bound_to_a_foreign_tenant_is_refused(world, token):
    response = api_client(world, token).post(
        "/api/v1/tokens/", {"name": "evil", "tenant": "acme"}, content_type="application/json"
    )
    assert response.status_code in (400, 403), response.content
    assert not ApiToken.objects.filter(tenant=world.tenant, user=world.outsider).exists()


@pytest.mark.parametrize("token", [False, True], ids=["session", "token"])
def test_invitation_to_a_foreign_tenant_is_refused(world, token):
    body = {"tenant": "acme", "email": "oscar@example.test", "role": "owner"}
    response = api_client(world, token).post(
        "/api/v1/invitations/", body, content_type="application/json"
    )
    assert response.status_code in (400, 403), response.content
    assert not Invitation.objects.filter(email="oscar@example.test").exists()


def test_anonymous_and_bogus_tokens_get_401(world):
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer berth_bogus"}, {"HTTP_AUTHORIZATION": "x"}):
        client = new_client(**header)
        for url in ("/api/v1/tenants/", f"/api/v1/environments/{world.environment.pk}/"):
            response = client.get(url)
            assert response.status_code in (401, 403), (header, url, response.status_code)
            assert not leaks(response, world)
    assert (
        new_client(HTTP_AUTHORIZATION="Bearer berth_bogus").get("/api/v1/tenants/").status_code
        == 401
    )


def test_invitation_link_in_the_wrong_hands_shows_nothing(world):
    url = f"/invitations/{world.invitation_raw}/"
    client = session_client(world)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert response.status_code < 500
        # The link itself may be echoed (its holder has it); tenant A's data may not.
        assert SECRET not in body_of(response).lower(), method
    assert not Membership.objects.filter(tenant=world.tenant, user=world.outsider).exists()
    world.invitation.refresh_from_db()
    assert world.invitation.status == "pending"
    anonymous = new_client().get(url)
    assert anonymous.status_code == 302
    assert urlsplit(anonymous["Location"]).path == resolve_url("account_login")


def test_removed_member_loses_api_and_session_at_once(world):
    olivia, marcus = world.people[0], world.people[1]
    _, raw = token_services.create_token(actor=marcus, name="m", tenant=world.tenant)
    _, unbound_raw = token_services.create_token(actor=marcus, name="all")
    bearer = new_client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    unbound = new_client(HTTP_AUTHORIZATION=f"Bearer {unbound_raw}")
    browser = new_client()
    browser.force_login(marcus, backend="django.contrib.auth.backends.ModelBackend")
    detail = f"/api/v1/environments/{world.environment.pk}/"
    for client in (bearer, unbound, browser):
        assert client.get(detail).status_code == 200

    tenant_services.remove_member(actor=olivia, membership=world.membership)

    assert bearer.get(detail).status_code == 401
    assert unbound.get(detail).status_code == 404
    assert browser.get(detail).status_code == 404
    assert world.tenant.slug not in json.dumps(unbound.get("/api/v1/tenants/").json())


def test_deactivated_user_loses_api_and_session_at_once(world):
    marcus = world.people[1]
    _, raw = token_services.create_token(actor=marcus, name="m")
    bearer = new_client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    browser = new_client()
    browser.force_login(marcus, backend="django.contrib.auth.backends.ModelBackend")
    detail = f"/api/v1/environments/{world.environment.pk}/"
    assert bearer.get(detail).status_code == 200
    assert browser.get(detail).status_code == 200
    marcus.is_active = False
    marcus.save()
    assert bearer.get(detail).status_code == 401
    assert browser.get(detail).status_code in (401, 403)


def test_read_only_token_cannot_write(world):
    olivia = world.people[0]
    _, raw = token_services.create_token(actor=olivia, name="ro", read_only=True)
    client = new_client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    url = f"/api/v1/environments/{world.environment.pk}/"
    assert client.get(url).status_code == 200
    response = client.patch(url, {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert client.delete(url).status_code == 403
    assert Environment.objects.get(pk=world.environment.pk).name == "acme-secret-env-qa"


def test_prometheus_endpoints_show_tenant_a_only_to_tenant_a(world):
    """The walk proves the outsider sees nothing; this proves there was something to see
    (tenant A's token finds its container's series), and that `?tenant=` is no way in."""
    url = "/api/v1/metrics/prometheus/"
    own = new_client(HTTP_AUTHORIZATION=f"Bearer {world.token_raw}").get(url)
    assert own.status_code == 200 and "acme-secret-shop-web-1" in own.content.decode()
    outsider = new_client(HTTP_AUTHORIZATION=f"Bearer {world.outsider_token_raw}")
    for asked in (url, f"{url}?tenant={world.tenant.slug}"):
        answer = outsider.get(asked)
        assert answer.status_code == 200 and not leaks(answer, world)
    assert outsider.get("/metrics").status_code == 403
    admin = new_client()
    admin.force_login(world.superuser, backend="django.contrib.auth.backends.ModelBackend")
    assert "acme-secret-shop-web-1" in admin.get("/metrics").content.decode()


def test_log_retention_routes_are_walked_and_show_tenant_a_only_to_tenant_a(world):
    """The Retention page and API (issue 15) are in the walk; tenant A's owner sees the
    retention the walk hides from the outsider, who cannot set it either."""
    shown = {route.display for route in walked_routes()}
    assert {
        "logs/retention/",
        "logs/retention/<int:pk>/",
        "api/v1/logs/retention/",
        "api/v1/logs/retention/<pk>/",
    } <= shown
    url = f"/api/v1/logs/retention/{world.environment.pk}/"
    own = new_client(HTTP_AUTHORIZATION=f"Bearer {world.token_raw}").get(url)
    assert own.status_code == 200 and own.json()["days"] == 3
    outsider = new_client(HTTP_AUTHORIZATION=f"Bearer {world.outsider_token_raw}")
    listed = outsider.get("/api/v1/logs/retention/")
    assert listed.status_code == 200 and not leaks(listed, world)
    assert "acme" not in listed.content.decode()
    answer = outsider.patch(url, {"days": 1}, content_type="application/json")
    assert answer.status_code == 404
    assert LogRetention.objects.get(environment=world.environment).days == 3


def test_combinations_are_covered():
    """Every walked route gets at least one request per caller (guards the generator)."""
    for route in walked_routes():
        assert route.methods, f"{route.display} accepts no method the walker knows"


def test_member_cannot_raise_their_own_role_over_the_api(world):
    marcus = world.people[1]
    client = new_client()
    client.force_login(marcus, backend="django.contrib.auth.backends.ModelBackend")
    url = f"/api/v1/memberships/{world.membership.pk}/"
    response = client.patch(url, {"role": "owner"}, content_type="application/json")
    assert response.status_code == 403, response.content
    assert Membership.objects.get(pk=world.membership.pk).role == Role.MEMBER


def test_admin_cannot_grant_owner_over_the_api(world):
    marcus, vera = world.people[1], world.people[2]
    Membership.objects.filter(pk=world.membership.pk).update(role=Role.ADMIN)
    client = new_client()
    client.force_login(marcus, backend="django.contrib.auth.backends.ModelBackend")
    vera_membership = Membership.objects.get(tenant=world.tenant, user=vera)
    url = f"/api/v1/memberships/{vera_membership.pk}/"
    response = client.patch(url, {"role": "owner"}, content_type="application/json")
    assert response.status_code == 403, response.content
    assert Membership.objects.get(pk=vera_membership.pk).role == Role.VIEWER


def test_viewer_cannot_mint_a_write_token_for_the_tenant(world):
    vera = world.people[2]
    client = new_client()
    client.force_login(vera, backend="django.contrib.auth.backends.ModelBackend")
    body = {"name": "rw", "tenant": "acme", "read_only": False}
    response = client.post("/api/v1/tokens/", body, content_type="application/json")
    assert response.status_code in (400, 403), response.content
    assert not ApiToken.objects.filter(user=vera, read_only=False, tenant=world.tenant).exists()


# --- websockets: every route of the ASGI router, foreign origins and the outsider ----------------

FOREIGN_ORIGINS = {
    "other port": b"http://testserver:8080",  # a tenant's container published on the host
    "other scheme": b"https://testserver",
    "other host": b"http://evil.example",
    "null": b"null",
}
SAME_ORIGIN = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
SOCKET_REFUSALS = (4401, 4403, 4404)


@dataclass(frozen=True)
class SocketRoute:
    display: str  # e.g. "ws/containers/<int:pk>/shell/"
    regex: str
    consumer: type


def asgi_websocket_router():
    """The URLRouter behind the production ASGI app's websocket middleware."""
    from channels.routing import URLRouter

    from paas.asgi import application

    app = application.application_mapping["websocket"]
    while not isinstance(app, URLRouter):
        inner = getattr(app, "inner", None) or getattr(app, "application", None)
        assert inner is not None, f"cannot see through {app!r} to the websocket routes"
        app = inner
    return app


def walk_websockets(router=None, regex: str = "", display: str = "") -> Iterator[SocketRoute]:
    """Every websocket route, nested routers included, from the router itself."""
    from channels.routing import URLRouter

    router = router or asgi_websocket_router()
    for route in router.routes:
        piece = route.pattern.regex.pattern.removeprefix("^").removesuffix("$")
        shown = display + str(route.pattern)
        if isinstance(route.callback, URLRouter):
            yield from walk_websockets(route.callback, regex + piece, shown)
        else:
            yield SocketRoute(shown, regex + piece, route.callback.consumer_class)


def socket_url(route: SocketRoute, world: World) -> str:
    model = getattr(route.consumer, "model", None)
    obj = world.object_for(model) if model is not None else None
    if obj is None:
        raise ConventionError(
            f"Websocket route {route.display!r} ({route.consumer.__name__}) needs a `model` "
            "attribute naming what its URL's pk is, and tenant A needs such an object."
        )
    for pattern, params in normalize(route.regex):
        url = "/" + pattern % dict.fromkeys(params, obj.pk)
        if re.fullmatch(route.regex, url[1:]):
            return url
    raise ConventionError(f"Cannot build a URL for websocket route {route.display!r}.")


async def socket_attempt(url: str, headers: list) -> tuple[bool, int | None, str]:
    """(handshake accepted, close code or None, the text the server sent).

    Reads until the server closes, or until its first message other than an error (the
    socket got past authorization and streams: the events socket stays open)."""
    from channels.testing import WebsocketCommunicator

    from paas.asgi import application

    comm = WebsocketCommunicator(application, url, headers=headers)
    accepted, _ = await comm.connect(timeout=10)
    if not accepted:
        return False, None, ""
    texts, code = [], None
    try:
        while True:
            message = await comm.receive_output(timeout=10)
            if message["type"] == "websocket.close":
                code = message.get("code", 1000)
                break
            texts.append(message.get("text") or "")
            if '"error"' not in texts[-1]:
                break
    finally:
        await comm.disconnect(timeout=5)
    return True, code, " ".join(texts)


def socket_headers(world: World, who: str) -> list[tuple[bytes, bytes]]:
    if who == "owner (session)":
        client = new_client()
        client.force_login(world.people[0], backend="django.contrib.auth.backends.ModelBackend")
        return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]
    if who == "outsider (session)":
        return [
            (b"cookie", f"sessionid={session_client(world).cookies['sessionid'].value}".encode())
        ]
    if who == "owner (token)":
        return [(b"authorization", f"Bearer {world.token_raw}".encode())]
    if who == "outsider (token)":
        return [(b"authorization", f"Bearer {world.outsider_token_raw}".encode())]
    return []


def socket_problems(route: SocketRoute, world: World) -> list[str]:
    url = socket_url(route, world)
    who_all = ("owner (session)", "owner (token)", "outsider (session)", "outsider (token)")
    creds = {who: socket_headers(world, who) for who in (*who_all, "anonymous")}
    problems = []

    def check(label: str, headers: list, expect_refused_handshake: bool):
        accepted, code, text = run(socket_attempt(url, headers))
        leaked = [s for s in world.secrets if s.lower() in text.lower()]
        if expect_refused_handshake and accepted:
            problems.append(f"  {label}: handshake accepted (close {code}), must be refused")
        elif not expect_refused_handshake and (not accepted or code not in SOCKET_REFUSALS):
            problems.append(f"  {label}: accepted={accepted} close={code}, must close 4401/3/4")
        if leaked:
            problems.append(f"  {label}: sent tenant A's data {leaked}")

    for who in who_all:
        for name, origin in FOREIGN_ORIGINS.items():
            headers = [(b"host", b"testserver"), (b"origin", origin), *creds[who]]
            check(f"{url} as {who} from {name} {origin.decode()}", headers, True)
    check(
        f"{url} as owner (session) without Origin",
        [(b"host", b"testserver"), *creds["owner (session)"]],
        True,
    )
    for who in ("outsider (session)", "outsider (token)", "anonymous"):
        check(f"{url} as {who}", [*SAME_ORIGIN, *creds[who]], False)
    # Positive control: the same URL and origin let tenant A's owner past authorization,
    # or the refusals above would prove nothing.
    accepted, code, _ = run(socket_attempt(url, [*SAME_ORIGIN, *creds["owner (session)"]]))
    if not accepted or code in SOCKET_REFUSALS:
        problems.append(
            f"  {url} as tenant A's owner (positive control): accepted={accepted} close={code}"
        )
    return problems


@pytest.mark.django_db(transaction=True)
def test_websocket_route_isolates_tenant_a(socket_route: SocketRoute, world: World):
    # Engine calls past authorization fail at once on a socket that does not exist.
    Host.objects.filter(pk=world.host.pk).update(endpoint="unix:///nonexistent/berth.sock")
    try:
        problems = socket_problems(socket_route, world)
    except ConventionError as exc:
        pytest.fail(str(exc), pytrace=False)
    if problems:
        pytest.fail(
            f"Websocket route {socket_route.display!r} ({socket_route.consumer.__name__}) "
            "fails the isolation walk:\n" + "\n".join(problems),
            pytrace=False,
        )


def test_websocket_walker_sees_every_route():
    from paas.routing import websocket_urlpatterns

    walked = {route.display for route in walk_websockets()}
    assert walked == {str(p.pattern) for p in websocket_urlpatterns}
    assert len(walked) >= 5
