"""Routes on the frontier: every change to a Route goes through here.

A route sends a host name (and path prefix) on the frontier to a port of one service.
Users add and remove their own routes (the stack page, /api/v1/routes/); the routes a
template declares in berth.yml follow the stack's current revision
(`sync_template_routes`, called with every new revision) and are changed by
redeploying with other answers, never one by one.

Host names belong to one tenant (HostnameClaim, unique on the name): the first route on
a name claims it inside the same transaction, the tenant's last route on it releases it.
Another tenant's name is refused without saying whose it is. A claim that no route uses
any more (its stack was removed, which deletes the routes with it) is stale and goes to
whoever asks next.

The port is the container port the frontier connects to on the environment network. Any
port from 1 to 65535 is accepted, declared in the compose file or not: containers reach
each other on every port of their network, and an image may listen on a port its
compose file never mentions (nothing is published for a route).

Every change records an Event and, once committed, sends `frontier_changed`, which makes
the frontier render, check and reload its configuration.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.activity.services import record_event
from apps.catalog.questions import is_hostname, question_names, route_path_problem
from apps.compose.interpolate import references
from apps.core.queue import enqueue_on_commit
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.deployments.models import HostnameClaim, Route, Service, Stack
from apps.deployments.signals import frontier_changed

EDITABLE = ("hostname", "path", "port", "balance", "sticky", "tls", "redirect_https")
TAKEN = "{hostname} is taken by another tenant."
BAD_HOSTNAME = "Enter a valid hostname (letters, digits and hyphens, separated by dots)."


# --- rules -------------------------------------------------------------------------------------


def clean_hostname(value: Any) -> str:
    """The host name lower-cased, or a ValidationError on `hostname` (no wildcards, no IPs:
    the catalog's `hostname` question rule)."""
    hostname = value.strip().lower() if isinstance(value, str) else ""
    if not hostname:
        raise ValidationError({"hostname": ["Enter a host name, like shop.example.com."]})
    if "*" in hostname:
        raise ValidationError({"hostname": ["Wildcard host names are not supported."]})
    if not is_hostname(hostname):
        raise ValidationError({"hostname": [BAD_HOSTNAME]})
    return hostname


def clean_path(value: Any) -> str:
    """A path prefix, by the catalog's rule for route paths (route_path_problem), so a
    route from the API and one from a template obey the same rule."""
    path = "/" if value in (None, "") else value
    problem = route_path_problem(path)
    if problem:
        raise ValidationError({"path": [f"The path {problem}."]})
    return path


def clean_port(value: Any) -> int:
    """The container port, 1 to 65535."""
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError({"port": ["Give the container port, a number from 1 to 65535."]})
    return value


def _choice(field: str, value: Any, choices: Any) -> str:
    if value not in choices.values:
        raise ValidationError({field: [f"Choose one of: {', '.join(choices.values)}."]})
    return value


def _certificate_model() -> Any:
    """The traffic app's Certificate model, or None while certificates are not wired.

    Looked up by name (the frontier's app sits above this one and is never imported).
    """
    try:
        return django_apps.get_model("traffic", "Certificate")
    except LookupError:
        return None


def _check_tls(tenant: Any, hostname: str, tls: str, redirect_https: bool) -> None:
    """HTTPS needs a certificate the frontier can serve; refuse what nothing would serve,
    instead of accepting a setting that is silently ignored."""
    if redirect_https and tls == Route.Tls.NONE:
        raise ValidationError(
            {"redirect_https": ["Redirecting to HTTPS needs a certificate: choose a TLS mode."]}
        )
    if tls == Route.Tls.NONE:
        return
    if not settings.BERTH_FRONTIER_TLS_ADDR:
        raise ValidationError(
            {
                "tls": [
                    "This installation has no HTTPS listener (BERTH_FRONTIER_TLS_ADDR is "
                    "empty): choose none."
                ]
            }
        )
    model = _certificate_model()
    if model is None:
        raise ValidationError(
            {"tls": ["HTTPS is not available on this installation yet: choose none."]}
        )
    if tls == Route.Tls.ACME and not settings.BERTH_ACME_DIRECTORY:
        raise ValidationError(
            {
                "tls": [
                    "Automatic certificates (ACME) are off on this installation: the "
                    "administrator sets BERTH_ACME_DIRECTORY. Upload a certificate instead."
                ]
            }
        )
    if tls == Route.Tls.UPLOADED and not (
        model._default_manager.filter(tenant=tenant, hostname=hostname, kind="uploaded").exists()
    ):
        raise ValidationError(
            {"tls": [f"Upload a certificate for {hostname} first, then choose uploaded."]}
        )


def _values(fields: dict[str, Any]) -> dict[str, Any]:
    """The route's fields checked and normalised (every rule except the claim)."""
    values = {
        "hostname": clean_hostname(fields.get("hostname")),
        "path": clean_path(fields.get("path", "/")),
        "port": clean_port(fields.get("port")),
        "balance": _choice("balance", fields.get("balance") or "roundrobin", Route.Balance),
        "sticky": bool(fields.get("sticky", False)),
        "tls": _choice("tls", fields.get("tls") or "none", Route.Tls),
        "redirect_https": bool(fields.get("redirect_https", False)),
    }
    return values


def route_url(route: Route) -> str:
    """Where a browser reaches the route: the host name on the frontier's port (HTTPS on
    its TLS port when the route has a certificate); 80 and 443 are left out."""
    https = route.tls != Route.Tls.NONE and _has_valid_certificate(route)
    address = settings.BERTH_FRONTIER_TLS_ADDR if https else settings.BERTH_FRONTIER_ADDR
    port = str(address).rpartition(":")[2]
    default = "443" if https else "80"
    shown = "" if port in ("", default) else f":{port}"
    return f"{'https' if https else 'http'}://{route.hostname}{shown}{route.path}"


def _has_valid_certificate(route: Route) -> bool:
    """The frontier serves a host name over HTTPS once its tenant's certificate is valid
    (an ACME order may still be pending, or have failed): link there only then."""
    model = _certificate_model()
    if model is None or not settings.BERTH_FRONTIER_TLS_ADDR:
        return False
    return model._default_manager.filter(
        tenant_id=route.tenant_id, hostname=route.hostname, state="valid"
    ).exists()


# --- host name claims --------------------------------------------------------------------------


def claim_hostname(tenant: Any, hostname: str, field: str = "hostname") -> HostnameClaim:
    """Claim `hostname` for `tenant`, in the caller's transaction, or a ValidationError.

    The claim row stays locked until the transaction ends, so two tenants asking at the
    same moment are served one after the other: the unique constraint decides, never a
    read made before the other's write.
    """
    claim = HostnameClaim.objects.select_for_update().filter(hostname=hostname).first()
    if claim is None:
        try:
            with transaction.atomic():
                claim = HostnameClaim.objects.create(hostname=hostname, tenant=tenant)
        except IntegrityError:
            claim = HostnameClaim.objects.select_for_update().get(hostname=hostname)
    if claim.tenant_id != tenant.pk:
        if claim_in_use(claim):
            raise ValidationError({field: [TAKEN.format(hostname=hostname)]})
        claim.tenant = tenant  # stale: its routes went with their stack
        claim.save(update_fields=["tenant"])
    return claim


def claim_in_use(claim: HostnameClaim) -> bool:
    """A claim holds while the name is routed, or while its tenant keeps a certificate
    for it (uploaded before its route exists): only a claim in use is refused to
    another tenant, so nobody can take, and so replace, a tenant's certificate."""
    if Route.objects.filter(hostname=claim.hostname).exists():
        return True
    model = _certificate_model()
    return model is not None and (
        model._default_manager.filter(hostname=claim.hostname, tenant_id=claim.tenant_id).exists()
    )


def release_unused_claims(tenant: Any) -> None:
    """Drop the tenant's claims that no route and no certificate of it uses any more."""
    unused = HostnameClaim.objects.filter(tenant=tenant).exclude(
        hostname__in=Route.objects.filter(tenant=tenant).values("hostname")
    )
    model = _certificate_model()
    if model is not None:
        held = model._default_manager.filter(tenant=tenant).values("hostname")
        unused = unused.exclude(hostname__in=held)
    unused.delete()


# --- user routes -------------------------------------------------------------------------------


def _check_service(actor: Any, service: Service) -> Stack:
    stack = Stack.objects.select_related("tenant").get(pk=service.stack_id)  # as it is now
    require_role(actor, stack.tenant, Role.MEMBER)
    if stack.desired_state == Stack.Desired.REMOVED:
        raise ValidationError({"service": ["This stack is being removed."]})
    return stack


def _check_free(hostname: str, path: str, exclude: int | None = None) -> None:
    taken = Route.objects.filter(hostname=hostname, path=path).exclude(pk=exclude)
    if taken.exists():
        raise ValidationError({"path": [f"{hostname}{path} already has a route."]})


def _save(route: Route) -> Route:
    """Insert or update; a (hostname, path) pair taken meanwhile is a 400, not a 500."""
    try:
        with transaction.atomic():
            route.save()
    except IntegrityError as exc:
        raise ValidationError(
            {"path": [f"{route.hostname}{route.path} already has a route."]}
        ) from exc
    return route


def _changed(route: Route, action: str, actor: Any, message: str) -> None:
    """The Event, and the frontier told once the change is committed."""
    record_event(
        action,
        actor=actor,
        tenant=route.tenant,
        obj=route,
        message=message,
        data={"hostname": route.hostname, "path": route.path, "service": route.service.name},
    )
    notify_frontier(route.stack_id, action)
    _republish_on_swarm(route)


def _republish_on_swarm(route: Route) -> None:
    """On a Swarm cluster a route's port is published by the service's tasks (no routing
    mesh, swarm_reconcile.swarm_request): the stack's services are updated to match."""
    from apps.deployments.swarm_reconcile import targets_swarm
    from apps.deployments.tasks import reconcile_stack

    if targets_swarm(route.stack.environment) is not None:
        enqueue_on_commit(reconcile_stack, route.stack_id)


def notify_frontier(stack_id: int | None, reason: str) -> None:
    """`frontier_changed`, after commit: the frontier reads committed rows only. Robust:
    the change is committed by then, and a receiver's failure must not turn it into a
    500 (the frontier records its own errors)."""
    transaction.on_commit(
        lambda: frontier_changed.send_robust(sender=Route, stack_id=stack_id, reason=reason)
    )


@transaction.atomic
def create_route(
    actor: Any,
    service: Service,
    *,
    hostname: str,
    path: str = "/",
    port: int,
    balance: str = Route.Balance.ROUND_ROBIN,
    sticky: bool = False,
    tls: str = Route.Tls.NONE,
    redirect_https: bool = False,
) -> Route:
    """Add a user route to `service` (members and above of the service's tenant)."""
    stack = _check_service(actor, service)
    values = _values(
        {
            "hostname": hostname,
            "path": path,
            "port": port,
            "balance": balance,
            "sticky": sticky,
            "tls": tls,
            "redirect_https": redirect_https,
        }
    )
    claim_hostname(stack.tenant, values["hostname"])
    _check_tls(stack.tenant, values["hostname"], values["tls"], values["redirect_https"])
    _check_free(values["hostname"], values["path"])
    route = _save(
        Route(tenant=stack.tenant, stack=stack, service=service, origin=Route.Origin.USER, **values)
    )
    _changed(route, "route.create", actor, f"Route {route} -> {service.name}:{route.port}")
    return route


def _require_user_route(route: Route) -> None:
    if route.origin == Route.Origin.TEMPLATE:
        raise ValidationError(
            "This route comes from the template's berth.yml: change the stack's answers "
            "and redeploy to change or remove it."
        )


@transaction.atomic
def update_route(actor: Any, route: Route, **changes: Any) -> Route:
    """Change a user route's fields (`EDITABLE`, and `service` within the same tenant)."""
    route = Route.objects.select_for_update().select_related("stack__tenant").get(pk=route.pk)
    require_role(actor, route.tenant, Role.MEMBER)
    _require_user_route(route)
    unknown = set(changes) - {*EDITABLE, "service"}
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in unknown})
    service = changes.pop("service", None) or route.service
    if service.stack.tenant_id != route.tenant_id:
        raise ValidationError({"service": ["No such service."]})
    stack = _check_service(actor, service)
    values = _values({**{name: getattr(route, name) for name in EDITABLE}, **changes})
    old_hostname = route.hostname
    claim_hostname(route.tenant, values["hostname"])
    _check_tls(route.tenant, values["hostname"], values["tls"], values["redirect_https"])
    _check_free(values["hostname"], values["path"], exclude=route.pk)
    for name, value in values.items():
        setattr(route, name, value)
    route.service, route.stack = service, stack
    _save(route)
    if old_hostname != route.hostname:
        release_unused_claims(route.tenant)
    _changed(route, "route.update", actor, f"Route {route} -> {service.name}:{route.port}")
    return route


@transaction.atomic
def delete_route(actor: Any, route: Route) -> None:
    """Remove a user route; the host name is released with the tenant's last route on it."""
    route = Route.objects.select_for_update().select_related("service").get(pk=route.pk)
    require_role(actor, route.tenant, Role.MEMBER)
    _require_user_route(route)
    text = f"Removed route {route} -> {route.service.name}:{route.port}"
    route_id = route.pk
    route.delete()
    route.pk = route_id  # the Event names the row that was
    release_unused_claims(route.tenant)
    _changed(route, "route.delete", actor, text)


# --- template routes ---------------------------------------------------------------------------


def template_routes(spec: dict) -> dict[tuple[str, str, str], int]:
    """(service, hostname, path) -> port of the routes in the spec's berth.yml settings
    (interpolated; a route with an empty hostname is not there)."""
    berth = spec.get("berth") if isinstance(spec, dict) else None
    settings_of = (berth or {}).get("services") or {}
    wanted: dict[tuple[str, str, str], int] = {}
    for name, conf in settings_of.items():
        for route in (conf or {}).get("routes") or []:
            hostname = str(route.get("hostname") or "").strip().lower()
            if hostname:
                wanted[(name, hostname, route.get("path") or "/")] = route.get("port")
    return wanted


def _answer_field(stack: Stack, service: str) -> str:
    """The question whose answer made the service's route hostnames (`DOMAIN`), so a
    conflict is reported on the form field the user can change; else `hostname`."""
    version = stack.template_version
    config = getattr(version, "config", None) or {}
    routes = ((config.get("services") or {}).get(service) or {}).get("routes") or []
    questions = question_names(version)
    for route in routes:
        text = route.get("hostname") if isinstance(route, dict) else None
        for reference in references(text if isinstance(text, str) else ""):
            if reference.name in questions:
                return reference.name
    return "hostname"


def _template_route_problem(stack: Stack, service: str, hostname: str, path: str) -> None:
    field = _answer_field(stack, service)
    try:
        values = _values({"hostname": hostname, "path": path, "port": 1})
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from exc
    claim_hostname(stack.tenant, values["hostname"], field=field)
    other = Route.objects.filter(hostname=hostname, path=path).exclude(
        stack=stack, service__name=service, origin=Route.Origin.TEMPLATE
    )
    if other.exists():
        raise ValidationError({field: [f"{hostname}{path} already has a route."]})


def sync_template_routes(stack: Stack, spec: dict, actor: Any = None) -> None:
    """Make the stack's template routes those of `spec["berth"]` (its new revision).

    Called inside the revision's transaction: a host name another tenant holds, or a
    host and path another route already serves, refuses the whole deploy with the error
    on the question that gave the host name. User routes are left alone.
    """
    wanted = template_routes(spec)
    services_by_name = {s.name: s for s in stack.services.all()}
    current = {
        (r.service.name, r.hostname, r.path): r
        for r in stack.routes.filter(origin=Route.Origin.TEMPLATE).select_related("service")
    }
    changes = []
    for key, route in current.items():
        if key not in wanted or key[0] not in services_by_name:
            route.delete()
            changes.append(f"-{route}")
    for (service, hostname, path), port in wanted.items():
        if service not in services_by_name:
            continue
        _template_route_problem(stack, service, hostname, path)
        route = current.get((service, hostname, path))
        if route is not None and route.port != port:
            route.port = clean_port(port)
            route.save(update_fields=["port", "updated_at"])
            changes.append(f"~{route}")
        elif route is None:
            route = _save(
                Route(
                    tenant=stack.tenant,
                    stack=stack,
                    service=services_by_name[service],
                    hostname=hostname,
                    path=path,
                    port=clean_port(port),
                    origin=Route.Origin.TEMPLATE,
                )
            )
            changes.append(f"+{route}")
    release_unused_claims(stack.tenant)
    if changes:
        record_event(
            "route.sync",
            actor=actor,
            tenant=stack.tenant,
            obj=stack,
            message=f"Template routes of {stack.name}: {', '.join(changes)}",
        )
        notify_frontier(stack.pk, "route.sync")
