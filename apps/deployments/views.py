"""Stack pages: the list, deploy from compose, the stack page (refreshing itself while
work is under way), actions, scale, revisions with diff and rollback, and upgrade.

Thin views: objects are found through `visible_to` (a foreign stack is 404) and every
change is one call to apps.deployments.services, which checks the role (too low a role
is the 403 page) and queues the reconciler.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.vary import vary_on_headers
from django.views.generic import ListView

from apps.activity.models import Event
from apps.catalog.answers import new_questions
from apps.catalog.services import save_as_template
from apps.catalog.versions import upgrade_targets
from apps.core.generic import CreateFormView, ObjectDetailView, ObjectFormView
from apps.core.mixins import TenantScopedMixin
from apps.core.roles import Role, rank
from apps.core.tenancy import require_role, role_of
from apps.deployments import forms, rollout, routes, services
from apps.deployments.api.views import revision_diff
from apps.deployments.exception_forms import ConfirmExceptionsMixin, show_confirmation
from apps.deployments.exceptions import CONFIRM_FIELD, confirmed
from apps.deployments.live_limits import SERVER_BUSY, StreamLease
from apps.deployments.models import Container, Revision, Rollout, Route, Service, Stack
from apps.deployments.ports import request_host_name
from apps.deployments.rows import container_rows, render_rows
from apps.deployments.shells import shell_choice
from apps.hosts.engine import EngineError, get_engine
from apps.hosts.engine.streams import POOL, merge_lines

BUSY_STATES = (Stack.State.DEPLOYING, Stack.State.STOPPING, Stack.State.REMOVING)


def my_role(user, tenant) -> str | None:
    """The user's role for showing buttons (the services check again)."""
    return Role.OWNER if user.is_superuser else role_of(user, tenant)


def can(user, tenant, role: str) -> bool:
    current = my_role(user, tenant)
    return current is not None and rank(current) >= rank(role)


class StackListView(TenantScopedMixin, ListView):
    """The stacks of the current environment (or of the current tenant), a page at a time."""

    model = Stack
    template_name = "deployments/stack_list.html"
    context_object_name = "stacks"
    paginate_by = 50

    def get_queryset(self):
        queryset = (
            super()
            .get_queryset()
            .select_related("environment", "template_version__template", "current_revision")
        )
        request = self.request
        if request.environment is not None:
            return queryset.filter(environment=request.environment)
        if request.tenant is not None:
            return queryset.filter(tenant=request.tenant)
        return queryset.none()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.request.tenant
        context["can_deploy"] = bool(tenant) and can(self.request.user, tenant, Role.MEMBER)
        return context


class StackCreateView(ConfirmExceptionsMixin, CreateFormView):
    """Deploy a stack from a pasted compose file into the current environment."""

    template_name = "deployments/stack_form.html"
    form_class = forms.ComposeDeployForm

    def perform(self, form):
        environment = self.request.environment
        if environment is None:
            raise ValidationError("Choose a tenant and an environment first (top bar).")
        stack = services.create_stack(
            self.request.user,
            environment,
            form.cleaned_data["name"],
            compose=form.cleaned_data["compose"],
        )
        messages.success(self.request, f"Deploying {stack.name}.")
        return redirect("stacks:detail", pk=stack.pk)

    def check(self, form):
        """An empty name still has the compose file checked, and the other way round."""
        if self.request.environment is None:
            return
        services.check_stack(
            self.request.user,
            self.request.environment,
            form.cleaned_data.get("name", ""),
            compose=form.cleaned_data.get("compose"),
        )


def status_context(request, stack: Stack) -> dict:
    """What the self-refreshing part of the stack page shows (`#stack-status`, and the
    header's line and buttons swapped in with it): the live page fetches it on every
    container, service or stack event, so it reads nothing else.

    A fixed number of queries whatever the number of services and containers; the
    user's role is read once for every button.
    """
    service_rows = [
        (service, forms.ScaleForm(initial={"replicas": service.scale}))
        # The autoscaling badge (apps/autoscaling's reverse one-to-one): read in the
        # same query, so the status part stays a fixed number of queries.
        for service in stack.services.select_related("autoscaler").order_by("name")
    ]
    role = my_role(request.user, stack.tenant)
    can_act = role is not None and rank(role) >= rank(Role.MEMBER)
    containers = container_rows(stack.containers, request_host_name(request))
    change = stack.desired_state != Stack.Desired.REMOVED
    return {
        "stack": stack,
        "stack_role": role,
        "service_rows": service_rows,
        "containers": containers,
        "container_table": render_rows(containers, can_act=can_act, change=change),
        "busy": stack.state in BUSY_STATES or bool(stack.operation),
        "can_act": can_act,
        "can_remove": role is not None and rank(role) >= rank(Role.ADMIN),
        "upgrades": upgrade_targets(stack.template_version, request.user),
    }


def stack_context(request, stack: Stack) -> dict:
    """What the stack page shows: the status part, its recent events and its routes."""
    context = status_context(request, stack)
    # Newest first by id (the order they were written), from the (object_type,
    # object_id, id) index whatever the size of the events table. The stack was found
    # through `visible_to`, so its tenant is the boundary: a constant here, not the
    # membership subquery, with which PostgreSQL intersected the whole tenant's events
    # (10-20 ms at a million events).
    events = Event.objects.filter(
        tenant_id=stack.tenant_id, object_type="stack", object_id=str(stack.pk)
    )
    recent = list(events.order_by("-pk")[:12])
    services_list = [service for service, _form in context["service_rows"]]
    context.update(
        last_event_id=recent[0].pk if recent else 0,
        events=recent,
        **routes_context(stack, services=services_list),
    )
    return context


def routes_context(
    stack: Stack, health: dict | None = None, services: list[Service] | None = None
) -> dict:
    """The stack page's Routes section: each route with its link on the frontier and,
    once the frontier was asked (`health`, by apps.traffic's fragment), its backends.
    `services`: the stack's, already read by the caller (the add form offers them)."""
    rows = list(stack.routes.select_related("service").order_by("hostname", "path"))
    for route in rows:
        route.url = routes.route_url(route)
        route.backends = None if health is None else health.get(route.pk, [])
    return {
        "routes": rows,
        "route_form": forms.RouteForm(stack=stack, services=services),
        "rollouts": list(stack.rollouts.filter(state__in=Rollout.ACTIVE).order_by("service")),
        # Finished ones too: an upgrade rolled back by itself leaves a healthy stack on
        # its old revision, and the page must say why the new one is not running.
        "recent_rollouts": list(
            stack.rollouts.exclude(state__in=Rollout.ACTIVE).order_by("-started_at")[:5]
        ),
        "health_loaded": health is not None,
    }


class StackScopedMixin(TenantScopedMixin):
    model = Stack

    def get_queryset(self):
        return (
            super()
            .get_queryset()
            .select_related(
                "tenant", "environment", "template_version__template", "current_revision"
            )
        )


class StackDetailView(StackScopedMixin, ObjectDetailView):
    template_name = "deployments/stack_detail.html"
    context_of = staticmethod(stack_context)

    def get_context_data(self, **kwargs):
        services.expire_operation(self.object)
        context = super().get_context_data(**kwargs)
        context.update(self.context_of(self.request, self.object))
        return context


@method_decorator(vary_on_headers("HX-Request"), name="dispatch")
class StackStatusView(StackDetailView):
    """The self-refreshing part of the stack page (htmx polls it while work runs)."""

    template_name = "deployments/partials/_stack_status.html"
    context_of = staticmethod(status_context)


class StackActionView(StackScopedMixin, ObjectFormView):
    """POST-only: one service call, then back to the stack page with what happened."""

    http_method_names = ["post"]
    required_role = Role.MEMBER
    operation = ""
    done = ""

    def form_valid(self, form):
        try:
            getattr(services, self.operation)(self.request.user, self.object)
            messages.success(self.request, self.done.format(name=self.object.name))
        except ValidationError as exc:
            messages.error(self.request, " ".join(exc.messages))
        return redirect("stacks:detail", pk=self.object.pk)


class StackStopView(StackActionView):
    operation, done = "stop", "Stopping {name}."


class StackStartView(StackActionView):
    operation, done = "start", "Starting {name}."


class StackRestartView(StackActionView):
    operation, done = "restart", "Restarting {name}."


class StackCancelView(StackActionView):
    operation, done = "cancel", "Asked the worker to cancel the operation on {name}."


class StackRemoveView(StackScopedMixin, ObjectFormView):
    """Confirm, then remove the stack (volumes only when ticked)."""

    required_role = Role.ADMIN
    template_name = "deployments/stack_remove.html"
    form_class = forms.RemoveForm

    def perform(self, form):
        stack = services.remove(
            self.request.user, self.object, volumes=form.cleaned_data["volumes"]
        )
        messages.success(self.request, f"Removing {stack.name}.")
        return redirect("stacks:list")


class ServiceScaleView(TenantScopedMixin, ObjectFormView):
    """POST-only: scale one service (the service checks the role and the range)."""

    model = Service
    http_method_names = ["post"]
    form_class = forms.ScaleForm

    def form_valid(self, form):
        service = self.object
        try:
            services.scale(self.request.user, service, form.cleaned_data["replicas"])
            messages.success(
                self.request, f"Scaling {service.name} to {form.cleaned_data['replicas']}."
            )
        except ValidationError as exc:
            messages.error(self.request, " ".join(exc.messages))
        return redirect("stacks:detail", pk=service.stack_id)

    def form_invalid(self, form):
        errors = "; ".join(e for errs in form.errors.values() for e in errs)
        messages.error(self.request, f"Replicas: {errors}")
        return redirect("stacks:detail", pk=self.object.stack_id)


class RouteCreateView(StackScopedMixin, ObjectFormView):
    """POST-only: add a user route to one of the stack's services; a refused route shows
    the stack page again with the messages under the form's fields."""

    http_method_names = ["post"]
    required_role = Role.MEMBER
    template_name = "deployments/stack_detail.html"
    form_class = forms.RouteForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "stack": self.object}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(stack_context(self.request, self.object))
        context["route_form"] = kwargs.get("form") or context["form"]
        return context

    def perform(self, form):
        data = dict(form.cleaned_data)
        route = routes.create_route(self.request.user, data.pop("service"), **data)
        messages.success(self.request, f"Route {route.hostname}{route.path} added.")
        return redirect(reverse("stacks:detail", args=[self.object.pk]) + "#routes")


class RouteDeleteView(TenantScopedMixin, ObjectFormView):
    """POST-only: remove a user route (template routes change with the stack's answers)."""

    model = Route
    http_method_names = ["post"]

    def form_valid(self, form):
        route = self.object
        try:
            routes.delete_route(self.request.user, route)
            messages.success(self.request, f"Route {route.hostname}{route.path} removed.")
        except ValidationError as exc:
            messages.error(self.request, " ".join(exc.messages))
        return redirect(reverse("stacks:detail", args=[route.stack_id]) + "#routes")


class RolloutActionView(TenantScopedMixin, ObjectFormView):
    """POST-only: steer a canary (weight, promote, abort) through apps.deployments.rollout,
    which checks the role and the rollout's state; then back to the stack's routes."""

    model = Rollout
    http_method_names = ["post"]
    operation = ""
    done = ""

    def get_queryset(self):
        return super().get_queryset().select_related("stack")

    def act(self, form) -> str:
        steered = getattr(rollout, self.operation)(self.request.user, self.object)
        return self.done.format(service=steered.service, to=steered.to_revision)

    def form_valid(self, form):
        try:
            messages.success(self.request, self.act(form))
        except ValidationError as exc:
            messages.error(self.request, " ".join(exc.messages))
        return self.back()

    def form_invalid(self, form):
        errors = "; ".join(e for errs in form.errors.values() for e in errs)
        messages.error(self.request, f"Canary weight: {errors}")
        return self.back()

    def back(self):
        return redirect(reverse("stacks:detail", args=[self.object.stack_id]) + "#routes")


class RolloutWeightView(RolloutActionView):
    form_class = forms.CanaryWeightForm

    def act(self, form) -> str:
        weight = form.cleaned_data["weight"]
        rollout.set_canary_weight(self.request.user, self.object, weight)
        return f"{self.object.service}: {weight} % of the traffic goes to the canary."


class RolloutPromoteView(RolloutActionView):
    operation, done = "promote", "Promoting {service} to r{to}."


class RolloutAbortView(RolloutActionView):
    operation, done = "abort", "Aborting the rollout of {service}."


class StackRevisionsView(StackScopedMixin, ObjectDetailView):
    """Every revision with its summary; a diff between two; rollback buttons."""

    template_name = "deployments/stack_revisions.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        stack = self.object
        revisions = list(stack.revisions.select_related("created_by", "template_version"))
        by_id = {str(r.pk): r for r in revisions}
        new = by_id.get(self.request.GET.get("b", "")) or (revisions[0] if revisions else None)
        older = [r for r in revisions if new and r.number < new.number]
        old = by_id.get(self.request.GET.get("a", "")) or (older[0] if older else None)
        context.update(
            stack=stack,
            revisions=revisions,
            diff_a=old,
            diff_b=new,
            diff_lines=revision_diff(old, new) if new else [],
            can_act=can(self.request.user, stack.tenant, Role.MEMBER),
        )
        return context


class RevisionRollbackView(TenantScopedMixin, ObjectFormView):
    """POST-only: roll the revision's stack back to it (a new revision)."""

    model = Revision
    http_method_names = ["post"]

    def form_valid(self, form):
        revision = self.object
        try:
            ticked = self.request.POST.get(CONFIRM_FIELD) in ("on", "true", "True")
            with confirmed(ticked):  # a platform admin's box
                services.rollback(self.request.user, revision.stack, revision)
            messages.success(self.request, f"Rolling back to r{revision.number}.")
        except ValidationError as exc:
            messages.error(self.request, " ".join(exc.messages))
        return redirect("stacks:detail", pk=revision.stack_id)


class StackSaveTemplateView(StackScopedMixin, ObjectFormView):
    """Save the stack as a template of its tenant: its compose file, its questions with
    its answers as defaults (secrets never); private, or public once an admin approves."""

    required_role = Role.MEMBER
    template_name = "deployments/stack_save_template.html"
    form_class = forms.SaveAsTemplateForm

    def get_initial(self):
        return {"slug": self.object.name, "name": self.object.name, "version": "1.0.0"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["stack"] = self.object
        return context

    def perform(self, form):
        data = form.cleaned_data
        metadata = {k: data.get(k) for k in ("slug", "name", "description")}
        saved = save_as_template(
            self.request.user, self.object, metadata, data["version"], visibility=data["visibility"]
        )
        messages.success(self.request, f"Saved {self.object.name} as {saved}.")
        return redirect("catalog:detail", pk=saved.template_id)


class StackUpgradeView(ConfirmExceptionsMixin, StackScopedMixin, ObjectFormView):
    """Choose a newer version of the stack's template; only its new questions are asked."""

    required_role = Role.MEMBER
    template_name = "deployments/stack_upgrade.html"
    form_class = forms.UpgradeForm

    def targets(self):
        return upgrade_targets(self.object.template_version, self.request.user)

    def target(self):
        wanted = self.request.POST.get("version") or self.request.GET.get("version")
        targets = self.targets()
        return next((v for v in targets if v.version == wanted), targets[0] if targets else None)

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        target = self.target()
        kwargs["targets"] = self.targets()
        kwargs["questions"] = (
            new_questions(self.object.template_version, target, self.object.answers)
            if target
            else []
        )
        kwargs.setdefault("initial", {})["version"] = target.version if target else None
        return kwargs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(stack=self.object, target=self.target())
        return context

    def perform(self, form):
        """ "Preview changes" shows what the upgrade would change (nothing is written);
        "Upgrade" applies it, only if it is still exactly the change previewed."""
        target, answers = self.target(), form.answers()
        preview = services.preview_upgrade(self.request.user, self.object, target, answers)
        show_confirmation(form, preview)
        context = {"form": form, "preview": preview}
        if self.request.POST.get("action") != "apply":
            return self.render_to_response(self.get_context_data(**context))
        if self.request.POST.get("fingerprint") != preview["fingerprint"]:
            stale = "The upgrade would change something else than you previewed: check again."
            return self.render_to_response(self.get_context_data(**context, stale=stale))
        services.upgrade(self.request.user, self.object, target, answers)
        messages.success(self.request, f"Upgrading {self.object.name} to {target.version}.")
        return redirect("stacks:detail", pk=self.object.pk)


# --- live pages: logs, shell, one container's actions ---------------------------------------


class ContainerScopedMixin(TenantScopedMixin):
    model = Container

    def get_queryset(self):
        return super().get_queryset().select_related("stack__tenant", "service", "host", "node")


class ContainerLogsView(ContainerScopedMixin, ObjectDetailView):
    """One container's log tail over the websocket (viewers may read logs)."""

    template_name = "deployments/logs.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        container = self.object
        context.update(
            stack=container.stack,
            title=container.name,
            ws_path=f"/ws/containers/{container.pk}/logs/",
            download_url=reverse("stacks:container_logs_download", args=[container.pk]),
            merged=False,
        )
        return context


class ServiceLogsView(TenantScopedMixin, ObjectDetailView):
    """Every container of a service merged in time order, each line prefixed."""

    model = Service
    template_name = "deployments/logs.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        service = self.object
        context.update(
            stack=service.stack,
            title=f"{service.stack.name}/{service.name}",
            ws_path=f"/ws/services/{service.pk}/logs/",
            download_url=reverse("stacks:service_logs_download", args=[service.pk]),
            merged=True,
        )
        return context


class ContainerShellView(ContainerScopedMixin, ObjectDetailView):
    """An interactive terminal in the container: members and above (a viewer gets 403)."""

    template_name = "deployments/shell.html"

    def get(self, request, *args, **kwargs):
        require_role(request.user, self.object.stack.tenant, Role.MEMBER)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            stack=self.object.stack,
            ws_path=f"/ws/containers/{self.object.pk}/shell/",
            # only the shells it has; why none
            choice=shell_choice(self.object, operator=self.request.user.is_superuser),
        )
        return context


class ContainerActionView(ContainerScopedMixin, ObjectFormView):
    """POST-only: start/stop/restart/remove one container (the service checks the role).

    From htmx the answer is 204 with a toast: the stack page updates itself from the
    event stream. A plain form post goes back to the stack page with a message.
    """

    http_method_names = ["post"]
    operation = ""

    def form_valid(self, form):
        container = self.object
        try:
            getattr(services, f"{self.operation}_container")(self.request.user, container)
            text, kind = f"{services.CONTAINER_VERBS[self.operation]} {container.name}.", "success"
        except ValidationError as exc:
            text, kind = " ".join(exc.messages), "error"
        if self.request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Trigger"] = json.dumps({"berth-toast": {"text": text, "kind": kind}})
            return response
        getattr(messages, kind)(self.request, text)
        return redirect("stacks:detail", pk=container.stack_id)


class ContainerStartView(ContainerActionView):
    operation = "start"


class ContainerStopView(ContainerActionView):
    operation = "stop"


class ContainerRestartView(ContainerActionView):
    operation = "restart"


class ContainerRemoveView(ContainerActionView):
    operation = "remove"


def _log_text(containers: list[Container], prefixed: bool) -> Iterator[bytes]:
    """The merged log; an engine that fails mid-way ends the file with a readable line.

    The response has started by then, so an error page is no longer possible; a
    truncated file without a word would look complete.
    """
    try:
        yield from _merged_log_lines(containers, prefixed)
    except EngineError as exc:
        yield f"# Berth: the log could not be read to the end: {exc}\n".encode()


def _merged_log_lines(containers: list[Container], prefixed: bool) -> Iterator[bytes]:
    """Every line the engine kept, one "<time> <stream> [container | ]line" per line;
    several containers are merged in time order. Lazy: memory stays small."""
    with ExitStack() as stack:
        sources, prefixes = [], []
        for container in containers:
            engine = stack.enter_context(get_engine(container.host))
            log = engine.logs(container.engine_id, follow=False, tail="all")
            stack.callback(log.close)
            sources.append(log.lines())
            prefixes.append(f"{container.name} | " if prefixed else "")
        chunk: list[str] = []
        for index, line in merge_lines(sources):
            chunk.append(f"{line.ts} {line.stream} {prefixes[index]}{line.text}\n")
            if len(chunk) >= 1000:
                yield "".join(chunk).encode()
                chunk = []
        yield "".join(chunk).encode()


class _LeasedChunks:
    """A download's chunks, holding the user's and the server's stream lease.

    Django closes the response after it is sent, the client gone or the body never
    read (`close()` here): the engine streams are closed and the lease given back once.
    """

    def __init__(self, chunks: Iterator[bytes], lease: Any) -> None:
        self.chunks = chunks
        self.lease = lease
        self.lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                self.chunks.close()
            except ValueError:  # being read in a pool thread right now; __aiter__ closes it
                return
            self.closed = True
        self.lease.give_all()


class _SyncChunks(_LeasedChunks):
    """Under WSGI: the server's thread reads the chunks."""

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks


class _PooledChunks(_LeasedChunks):
    """Under ASGI (daphne): each chunk is read in the stream pool. Django would read a
    synchronous iterator whole into memory, in the thread its sync views share, before
    sending a byte."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            while (chunk := await loop.run_in_executor(POOL, next, self.chunks, None)) is not None:
                yield chunk
        finally:
            await loop.run_in_executor(POOL, self.close)


def _log_download(request, containers: list[Container], name: str, prefixed: bool):
    """The log file, if the user's and the server's bounds on live streams allow it now
    (BERTH_LIVE_STREAMS_PER_USER: 429; BERTH_LIVE_STREAM_THREADS: 503)."""
    lease, reason = StreamLease.take(request.user.pk)
    if lease is None:
        status = 503 if reason == SERVER_BUSY else 429
        refused = HttpResponse(reason, status=status, content_type="text/plain; charset=utf-8")
        refused["Retry-After"] = "10"
        return refused
    wrapper = _PooledChunks if isinstance(request, ASGIRequest) else _SyncChunks
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        wrapper(_log_text(containers, prefixed), lease), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.log"'
    return response


class ContainerLogDownloadView(ContainerScopedMixin, ObjectDetailView):
    """The container's whole log as a file, streamed from the engine."""

    def get(self, request, *args, **kwargs):
        return _log_download(request, [self.object], self.object.name, prefixed=False)


class ServiceLogDownloadView(TenantScopedMixin, ObjectDetailView):
    """Every container of the service, merged in time order, as one file."""

    model = Service

    def get(self, request, *args, **kwargs):
        service = self.object
        containers = list(service.containers.select_related("host").order_by("replica"))
        name = f"{service.stack.name}-{service.name}"
        return _log_download(request, containers, name, prefixed=True)
