"""Catalog pages: the list (live search), a template's page with its deploy form,
publishing, and the approval queue for platform admins.

Lookups go through `visible_to`; every change is one service call (catalog services, or
deployments.create_stack for a deploy) whose ValidationError lands on the form.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.decorators import method_decorator
from django.views.decorators.vary import vary_on_headers
from django.views.generic import ListView

from apps.catalog import services
from apps.catalog.answers import resolve_answers
from apps.catalog.filters import PUBLISHERS, TemplateFilterSet
from apps.catalog.forms import DeployForm, PublishForm
from apps.catalog.models import Template, TemplateVersion
from apps.catalog.rendering import render_readme
from apps.catalog.validation import CATEGORIES
from apps.catalog.versions import newest_first
from apps.core.generic import CreateFormView, LookupFirstMixin, ObjectFormView
from apps.core.mixins import PlatformAdminMixin, TenantScopedMixin
from apps.core.roles import Role
from apps.deployments.exception_forms import ConfirmExceptionsMixin
from apps.deployments.services import check_stack, create_stack
from apps.tenants.models import Environment


def versions_newest_first(
    template: Template, user: Any, token: Any = None
) -> list[TemplateVersion]:
    versions = TemplateVersion.objects.visible_to(user, token=token).filter(template=template)
    return newest_first(versions)


@method_decorator(vary_on_headers("HX-Request"), name="dispatch")
class CatalogListView(TenantScopedMixin, ListView):
    """Cards of every template the user may see; htmx swaps only the results."""

    model = Template
    template_name = "catalog/template_list.html"
    context_object_name = "templates"

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset().select_related("publisher")
        templates = TemplateFilterSet(self.request.GET, queryset, tenant=self.request.tenant)
        return templates.qs

    def get_template_names(self) -> list[str]:
        if self.request.headers.get("HX-Request"):
            return ["catalog/partials/_results.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            categories=CATEGORIES.items(),
            publishers=PUBLISHERS.items(),
            filters=self.request.GET,
        )
        return context


class TemplateDetailView(
    ConfirmExceptionsMixin, TenantScopedMixin, LookupFirstMixin, CreateFormView
):
    """README, versions and the deploy form of the chosen version (?version=)."""

    model = Template
    template_name = "catalog/template_detail.html"
    form_class = DeployForm
    service_field_names = {"name": "stack_name"}

    def get_object(self) -> Template:
        found = self.get_queryset().filter(pk=self.kwargs["pk"]).first()
        if found is None:
            raise Http404("No such template.")
        return found

    def chosen_version(self) -> TemplateVersion | None:
        versions = versions_newest_first(self.object, self.request.user)
        wanted = self.request.GET.get("version") or self.request.POST.get("version")
        chosen = next((v for v in versions if v.version == wanted), None)
        stable = [v for v in versions if "-" not in v.version]
        return chosen or (stable or versions or [None])[0]

    def environments(self) -> QuerySet:
        tenant = self.request.tenant
        if tenant is None:
            return Environment.objects.none()
        return Environment.objects.visible_to(self.request.user, Role.MEMBER).filter(tenant=tenant)

    def get_form(self, form_class: Any = None) -> DeployForm | None:
        self.version = self.chosen_version()
        if self.version is None:
            return None
        form = DeployForm(
            **self.get_form_kwargs(), version=self.version, environments=self.environments()
        )
        return self.with_confirmation(form)  # platform admins: confirm policy exceptions

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = self.get_form()
        if form is None:
            raise Http404("This template has no version.")
        return self.form_valid(form) if form.is_valid() else self.form_invalid(form)

    def perform(self, form: DeployForm) -> HttpResponse:
        stack = create_stack(
            self.request.user,
            form.cleaned_data["environment"],
            form.cleaned_data["stack_name"],
            template_version=self.version,
            answers=form.answers(),
        )
        messages.success(self.request, f"Deploying {stack.name}.")
        return redirect("stacks:detail", pk=stack.pk)

    def check(self, form: DeployForm) -> None:
        """A refused name or environment still lets every answer be checked (and, with
        an environment, the name's rules and the rendered compose file)."""
        environment = form.cleaned_data.get("environment")
        if environment is None:
            resolve_answers(self.version, form.answers())
            return
        check_stack(
            self.request.user,
            environment,
            form.cleaned_data.get("stack_name", ""),
            template_version=self.version,
            answers=form.answers(),
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            template=self.object,
            version=self.version,
            versions=versions_newest_first(self.object, self.request.user),
            readme=render_readme(
                self.version.readme if self.version and self.version.readme else self.object.readme
            ),
            can_review=self.request.user.is_superuser,
            can_see_pending=Template.objects.visible_to(self.request.user, Role.MEMBER)
            .filter(pk=self.object.pk)
            .exists(),
        )
        return context


class PublishView(CreateFormView):
    """Publish a template (or a new version of one) for the current tenant."""

    template_name = "catalog/publish.html"
    form_class = PublishForm

    def perform(self, form: PublishForm) -> HttpResponse:
        if self.request.tenant is None:
            raise ValidationError("Choose a tenant first: templates are published by a tenant.")
        published = services.publish_template(
            self.request.user,
            self.request.tenant,
            form.metadata(),
            form.cleaned_data["version"],
            form.compose_text(),
            form.cleaned_data.get("berth") or "",
            form.cleaned_data.get("readme") or "",
            form.cleaned_data["visibility"],
        )
        messages.success(self.request, f"Published {published}.")
        return redirect("catalog:detail", pk=published.template_id)

    def check(self, form: PublishForm) -> None:
        """A missing description does not hide the compose file's problems."""
        compose = form.compose_text() if not form.has_error("compose_file") else ""
        if compose.strip():
            services.check_version(
                form.cleaned_data.get("version", ""), compose, form.cleaned_data.get("berth") or ""
            )


class ApprovalListView(PlatformAdminMixin, ListView):
    """Templates waiting for a platform admin's review: asking to be public, or public
    with a new version or new metadata."""

    model = Template
    template_name = "catalog/approvals.html"
    context_object_name = "templates"

    def get_queryset(self) -> QuerySet:
        queryset = Template.objects.visible_to(self.request.user).awaiting_review()
        waiting = TemplateVersion.objects.filter(review=Template.Approval.PENDING)
        return queryset.select_related("publisher").prefetch_related(
            Prefetch("versions", queryset=waiting, to_attr="waiting_versions")
        )


class ReviewView(PlatformAdminMixin, ObjectFormView):
    """Approve or reject (POST `decision`) a pending template."""

    model = Template
    http_method_names = ["post"]

    def perform(self, form: Any) -> HttpResponse:
        if self.request.POST.get("decision") == "approve":
            services.approve_template(self.request.user, self.object)
            messages.success(self.request, f"{self.object.name} is now in the public catalog.")
        else:
            reason = self.request.POST.get("reason", "")[:500]
            services.reject_template(self.request.user, self.object, reason)
            messages.info(self.request, f"{self.object.name} was rejected.")
        return redirect("catalog:approvals")

    def form_invalid(self, form: Any) -> HttpResponse:
        for error in form.non_field_errors():
            messages.error(self.request, error)
        return redirect("catalog:approvals")


class RequestPublicView(TenantScopedMixin, ObjectFormView):
    """A tenant admin asks for the tenant's template to be made public."""

    model = Template
    min_role = Role.ADMIN
    http_method_names = ["post"]

    def perform(self, form: Any) -> HttpResponse:
        services.request_public(self.request.user, self.object)
        messages.success(self.request, "Asked the platform admins to make it public.")
        return redirect("catalog:detail", pk=self.object.pk)

    def form_invalid(self, form: Any) -> HttpResponse:
        for error in form.non_field_errors():
            messages.error(self.request, error)
        return redirect("catalog:detail", pk=self.object.pk)
