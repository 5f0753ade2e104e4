"""Registry pages: repositories of the current tenant, tags with layers and image config,
robot accounts, usage with a chart, and the registry's notification webhook.

Thin views: objects are found through `visible_to` (a foreign one is 404); each change
is one call to apps.registry.services, which checks the role (too low is the 403 page).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import ListView, TemplateView

from apps.core.generic import CreateFormView, ObjectDetailView, ObjectFormView
from apps.core.mixins import PlatformAdminMixin, TenantScopedMixin
from apps.core.roles import Role, rank
from apps.core.tenancy import role_of
from apps.registry import browse, config, forms, gate, notifications, services, usage
from apps.registry.client import RegistryClient, RegistryError
from apps.registry.models import Repository, RobotAccount, TenantRegistryQuota

MAX_NOTIFICATION_BODY = 1024 * 1024


def can(user, tenant, role: str) -> bool:
    """For showing buttons only; the services check again."""
    if user.is_superuser:
        return True
    current = role_of(user, tenant) if tenant else None
    return current is not None and rank(current) >= rank(role)


class RepositoryListView(TenantScopedMixin, ListView):
    """The repositories of the current tenant, with storage and counters."""

    model = Repository
    template_name = "registry/repository_list.html"
    context_object_name = "repositories"

    def get_queryset(self):
        tenant = self.request.tenant
        if tenant is None:
            return Repository.objects.none()
        return super().get_queryset().filter(tenant=tenant).select_related("tenant")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.request.tenant
        context["registry_addr"] = config.registry_addr()
        context["quota"] = TenantRegistryQuota.objects.filter(tenant=tenant).first()
        context["can_push"] = bool(tenant) and can(self.request.user, tenant, Role.MEMBER)
        context["can_delete"] = bool(tenant) and can(self.request.user, tenant, Role.ADMIN)
        public = Repository.objects.browsable_by(self.request.user).filter(
            visibility=Repository.Visibility.PUBLIC
        )
        if tenant is not None:
            public = public.exclude(tenant=tenant)
        context["public_repositories"] = [
            (repo, f"docker pull {config.registry_addr()}/{repo.full_name}")
            for repo in public.select_related("tenant")
        ]
        return context


class RepositoryScopedMixin(TenantScopedMixin):
    model = Repository

    def get_queryset(self):
        return super().get_queryset().select_related("tenant")


class BrowsableMixin(RepositoryScopedMixin):
    """Read-only pages: the user's own repositories and every public one."""

    def get_queryset(self):
        return Repository.objects.browsable_by(self.request.user).select_related("tenant")


class RepositoryDetailView(BrowsableMixin, ObjectDetailView):
    """Tags (digest, size, created, pushed at and by), pull commands, visibility."""

    template_name = "registry/repository_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        repository = self.object
        try:
            tags = browse.repository_tags(repository)
        except RegistryError as exc:
            tags, context["registry_error"] = [], str(exc)
        context.update(
            {
                "repository": repository,
                "tags": [(t, browse.pull_command(repository, t.tag)) for t in tags],
                "can_admin": can(self.request.user, repository.tenant, Role.ADMIN),
                "visibility_form": forms.VisibilityForm(
                    initial={"visibility": repository.visibility}
                ),
                "push_command": f"docker push {config.registry_addr()}/{repository.full_name}:TAG",
                "member": can(self.request.user, repository.tenant, Role.VIEWER),
            }
        )
        if context["member"]:  # the tenant's own statistics, not for every visitor
            context["daily"] = usage.chart(usage.daily(repository.tenant, 14, repository))
        return context


class TagDetailView(BrowsableMixin, ObjectDetailView):
    """One tag: its layers and image configuration (environment names, never values)."""

    template_name = "registry/tag_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        repository, tag = self.object, self.kwargs["tag"]
        info = browse.tag_info(repository, tag, RegistryClient(), with_layers=True)
        context.update(
            {
                "repository": repository,
                "info": info,
                "pull_command": browse.pull_command(repository, tag),
                "can_admin": can(self.request.user, repository.tenant, Role.ADMIN),
                "member": can(self.request.user, repository.tenant, Role.VIEWER),
            }
        )
        return context


class TagDeleteView(RepositoryScopedMixin, ObjectFormView):
    """Confirm, then delete the tag's manifest (other tags of the same image go too)."""

    required_role = Role.ADMIN
    template_name = "registry/tag_delete.html"
    form_class = forms.ConfirmForm

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update({"repository": self.object, "tag": self.kwargs["tag"]})
        return context

    def perform(self, form):
        tag = self.kwargs["tag"]
        digest = services.delete_tag(actor=self.request.user, repository=self.object, tag=tag)
        messages.success(
            self.request,
            f"Deleted {self.object.full_name}:{tag} ({digest[:19]}…). "
            "The disk is freed by the next garbage collection.",
        )
        return redirect("registry:repository", pk=self.object.pk)


class RepositoryDeleteView(RepositoryScopedMixin, ObjectFormView):
    """Confirm, then forget an empty repository (one with tags says so and offers none)."""

    required_role = Role.ADMIN  # as for deleting its tags
    template_name = "registry/repository_delete.html"
    form_class = forms.ConfirmForm

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            tags = RegistryClient().list_tags(self.object.full_name)
        except RegistryError as exc:
            tags, context["registry_error"] = None, str(exc)
        context.update({"repository": self.object, "tags": tags})
        return context

    def perform(self, form):
        services.delete_repository(actor=self.request.user, repository=self.object)
        messages.success(self.request, f"Deleted the empty repository {self.object.full_name}.")
        return redirect("registry:list")


class RepositoryVisibilityView(RepositoryScopedMixin, ObjectFormView):
    """POST-only: make the repository public or private."""

    http_method_names = ["post"]
    required_role = Role.ADMIN
    form_class = forms.VisibilityForm

    def perform(self, form):
        repository = services.set_visibility(
            actor=self.request.user,
            repository=self.object,
            visibility=form.cleaned_data["visibility"],
        )
        messages.success(self.request, f"{repository.full_name} is now {repository.visibility}.")
        return redirect("registry:repository", pk=repository.pk)

    def form_invalid(self, form):
        messages.error(self.request, "Choose private or public.")
        return redirect("registry:repository", pk=self.object.pk)


class RobotListView(TenantScopedMixin, ListView):
    """The current tenant's robot accounts and the form to create one (admins)."""

    model = RobotAccount
    template_name = "registry/robot_list.html"
    context_object_name = "robots"

    def get_queryset(self):
        tenant = self.request.tenant
        if tenant is None:
            return RobotAccount.objects.none()
        return super().get_queryset().filter(tenant=tenant).select_related("tenant")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.request.tenant
        context["can_admin"] = bool(tenant) and can(self.request.user, tenant, Role.ADMIN)
        context.setdefault("form", forms.RobotForm())
        context["registry_addr"] = config.registry_addr()
        return context


class RobotCreateView(CreateFormView):
    """Create a robot of the current tenant; the page shows its secret once."""

    template_name = "registry/robot_list.html"
    form_class = forms.RobotForm

    def get(self, request, *args, **kwargs):
        return redirect("registry:robots")

    def perform(self, form):
        tenant = self.request.tenant
        if tenant is None:
            raise ValidationError("Choose a tenant first (top bar).")
        robot, secret = services.create_robot(
            actor=self.request.user, tenant=tenant, **form.cleaned_data
        )
        return self._listing(new_robot=robot, secret=secret)

    def form_invalid(self, form):
        return self._listing(status=400, form=form)

    def _listing(self, status: int = 200, **extra) -> HttpResponse:
        """The robot list again, with the new robot's secret or the form's errors."""
        listing = RobotListView(request=self.request, kwargs={})
        listing.object_list = listing.get_queryset()
        context = listing.get_context_data(**extra)
        return render(self.request, self.template_name, context, status=status)


class RobotRevokeView(TenantScopedMixin, ObjectFormView):
    model = RobotAccount
    required_role = Role.ADMIN
    template_name = "registry/robot_revoke.html"
    form_class = forms.ConfirmForm

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "robot": self.object}

    def perform(self, form):
        robot = services.revoke_robot(actor=self.request.user, robot=self.object)
        messages.success(self.request, f"{robot.username} is revoked.")
        return redirect("registry:robots")


class UsageView(LoginRequiredMixin, TemplateView):
    """Pulls and pushes per day (inline SVG), hottest images, storage and transfer."""

    template_name = "registry/usage.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.request.tenant
        if tenant is None:
            return context
        summary = usage.summary(tenant)
        context.update(
            {
                "summary": summary,
                "chart": usage.chart(summary["daily"]),
                "hottest": usage.hottest(tenant),
                "repositories": Repository.objects.visible_to(self.request.user)
                .filter(tenant=tenant)
                .select_related("tenant")
                .order_by("-size_bytes"),
                "can_admin": can(self.request.user, tenant, Role.ADMIN),
                "threshold_form": kwargs.get("threshold_form")
                or forms.ThresholdForm(
                    initial={"pull_alert_threshold": summary["pull_alert_threshold"]}
                ),
            }
        )
        return context


class ThresholdView(CreateFormView):
    """POST-only: the tenant's pull alert threshold (tenant admins)."""

    http_method_names = ["post"]
    form_class = forms.ThresholdForm
    template_name = "registry/usage.html"

    def perform(self, form):
        tenant = self.request.tenant
        if tenant is None:
            raise ValidationError("Choose a tenant first (top bar).")
        services.set_pull_alert_threshold(
            actor=self.request.user,
            tenant=tenant,
            threshold=form.cleaned_data["pull_alert_threshold"],
        )
        messages.success(self.request, "Pull alert threshold saved.")
        return redirect("registry:usage")

    def form_invalid(self, form):
        context = UsageView(request=self.request, kwargs={}).get_context_data(threshold_form=form)
        return render(self.request, "registry/usage.html", context, status=400)


class GarbageCollectView(PlatformAdminMixin, View):
    """POST-only (platform admins): queue a garbage collection."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest):
        if services.garbage_collect(actor=request.user):
            messages.success(request, "Garbage collection queued; its result shows in Activity.")
        else:
            messages.error(request, "The task queue is down: try again later.")
        return redirect("registry:usage")


@method_decorator(csrf_exempt, name="dispatch")
class NotificationView(View):
    """The registry's webhook: a wrong or missing shared secret is 401 (forged)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        if not notifications.is_authentic(request.headers.get("Authorization", "")):
            return JsonResponse({"error": "Not authenticated."}, status=401)
        if len(request.body) > MAX_NOTIFICATION_BODY:
            return JsonResponse({"error": "Envelope too large."}, status=413)
        try:
            outcome = services.ingest_notifications(json.loads(request.body or b"null"))
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse(outcome.as_dict())


@method_decorator(csrf_exempt, name="dispatch")
class ManifestGateView(View):
    """A manifest upload, routed here by the registry's gate (HAProxy) before the
    registry sees it: only a token of ours granting push on that repository gets through
    (else the registry's own 401 challenge), and a push that would pass the tenant's
    storage quota is refused in the registry's error format, which `docker push` prints."""

    http_method_names = ["put", "post"]
    model = Repository  # the isolation test's walker: the route touches repositories

    def post(self, request: HttpRequest, path: str) -> HttpResponse:
        """The start of a blob upload (or a cross-repository mount): refused once the
        tenant is at its storage quota, so no more bytes reach the disk."""
        registry_path = f"/v2/{path}"
        name = gate.parse_upload_start_path(registry_path)
        if name is None:
            return gate.registry_error(404, "NAME_INVALID", "invalid repository name")
        authorization = request.headers.get("Authorization", "")
        if gate.pusher_of(authorization, name) is None:
            return gate.unauthorized(name, gate.token_problem(authorization))
        body = request.read(gate.MAX_MONOLITHIC + 1)
        if len(body) > gate.MAX_MONOLITHIC:
            return gate.registry_error(
                413, "SIZE_INVALID", "a blob sent whole with its POST is limited to 4 MiB"
            )
        query = request.META.get("QUERY_STRING", "")
        return _relayed(
            lambda: services.start_upload(registry_path, query, request.headers, body, name=name)
        )

    def put(self, request: HttpRequest, path: str) -> HttpResponse:
        registry_path = f"/v2/{path}"
        parsed = gate.parse_manifest_path(registry_path)
        if parsed is None:
            return gate.registry_error(
                404, "NAME_INVALID", "invalid repository name or manifest reference"
            )
        name, _ = parsed
        authorization = request.headers.get("Authorization", "")
        subject = gate.pusher_of(authorization, name)
        if subject is None:
            return gate.unauthorized(name, gate.token_problem(authorization))
        body = request.read(gate.MAX_MANIFEST + 1)
        if len(body) > gate.MAX_MANIFEST:
            return gate.registry_error(413, "SIZE_INVALID", "manifest larger than 4 MiB")
        query = request.META.get("QUERY_STRING", "")
        return _relayed(
            lambda: services.store_manifest(
                registry_path, query, request.headers, body, name=name, subject=subject
            )
        )


def _relayed(forward: Callable[[], gate.Forwarded]) -> HttpResponse:
    """The registry's answer to the forwarded request, or the gate's refusal."""
    try:
        answer = forward()
    except gate.QuotaExceededError as exc:
        return gate.registry_error(403, "DENIED", str(exc))
    except gate.GateError as exc:
        return gate.registry_error(503, "UNAVAILABLE", str(exc))
    response = HttpResponse(answer.body, status=answer.status)
    for header, value in answer.headers.items():
        response[header] = value
    return response
