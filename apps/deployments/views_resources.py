"""Resource pages: the tenant's volumes, networks and images on its hosts, a stack's
Volumes card, one container's inspect view, and a host's images for the operator.

Read-only (see apps.deployments.inventory), except removing an orphaned volume, which a
tenant admin confirms. Every engine call is made by inventory; a host that does not
answer is shown as unreachable on the page.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.views.generic import TemplateView

from apps.core.generic import CreateFormView, ObjectDetailView
from apps.core.mixins import PlatformAdminMixin
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.deployments import inventory
from apps.deployments.views import ContainerScopedMixin, StackScopedMixin, can
from apps.hosts.models import Host

TABS = (
    ("volumes", "Volumes"),
    ("networks", "Networks"),
    ("images", "Images"),
)


class ResourcePageView(LoginRequiredMixin, TemplateView):
    """One tab of the Resources section, over the current tenant (top bar)."""

    tab = ""
    template_name = "resources/list.html"

    def rows(self, tenant) -> list[inventory.HostResult]:
        raise NotImplementedError

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.request.tenant
        context.update(
            tab=self.tab,
            tabs=TABS,
            tenant=tenant,
            results=self.rows(tenant) if tenant is not None else [],
            can_remove=tenant is not None and can(self.request.user, tenant, Role.ADMIN),
        )
        return context


class VolumeListView(ResourcePageView):
    tab = "volumes"

    def rows(self, tenant):
        return inventory.tenant_volumes(tenant)


class NetworkListView(ResourcePageView):
    tab = "networks"

    def rows(self, tenant):
        return inventory.tenant_networks(tenant)


class ImageListView(ResourcePageView):
    tab = "images"

    def rows(self, tenant):
        return inventory.tenant_images(tenant)


class VolumeRemoveForm(forms.Form):
    host = forms.IntegerField(widget=forms.HiddenInput)
    name = forms.CharField(max_length=255, widget=forms.HiddenInput)
    confirm = forms.CharField(
        max_length=255,
        label="Type the volume's name to confirm",
        help_text="Its data is deleted for good.",
    )

    def clean(self):
        data = super().clean()
        if data.get("name") and data.get("confirm") and data["confirm"] != data["name"]:
            self.add_error("confirm", "Type the volume's name exactly.")
        return data


class VolumeRemoveView(CreateFormView):
    """Confirm, then remove one orphaned volume of the current tenant (tenant admins)."""

    template_name = "resources/volume_remove.html"
    form_class = VolumeRemoveForm

    def dispatch(self, request, *args, **kwargs):
        """Only a tenant admin is shown the confirmation (the service checks again)."""
        if request.user.is_authenticated:
            if request.tenant is None:
                raise Http404("Choose a tenant first.")
            require_role(request.user, request.tenant, Role.ADMIN)
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self):
        return {"host": self.request.GET.get("host"), "name": self.request.GET.get("name")}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context["form"]
        context["volume_name"] = form["name"].value() or ""
        context["tabs"], context["tab"] = TABS, "volumes"
        return context

    def perform(self, form):
        tenant = self.request.tenant
        host = Host.objects.filter(pk=form.cleaned_data["host"]).first()
        if tenant is None or host is None:
            raise ValidationError({"name": "No such volume."})
        row = inventory.remove_orphaned_volume(
            self.request.user, tenant, host, form.cleaned_data["name"]
        )
        messages.success(self.request, f"Removed volume {row.name} on {host.name}.")
        return redirect("resources:volumes")


class StackVolumesView(StackScopedMixin, ObjectDetailView):
    """The stack page's Volumes card (loaded by htmx after the page: sizes take time)."""

    template_name = "resources/partials/_stack_volumes_body.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        hosts = inventory.stack_volume_hosts(self.object)
        if self.request.GET.get("measure"):
            inventory.measure_again(hosts)
        results = inventory.stack_volumes(self.object)
        context.update(
            stack=self.object,
            results=results,
            empty=all(not r.unreachable and not r.rows for r in results),
            measured_at=inventory.usage_measured_at(hosts),
        )
        return context


class ContainerInspectView(ContainerScopedMixin, ObjectDetailView):
    """One container as the engine sees it, secrets masked (viewers may read it)."""

    template_name = "resources/container_inspect.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        container = self.object
        context.update(
            container=container,
            stack=container.stack,
            inspect=inventory.inspect_container(container),
            events=inventory.container_events(self.request.user, container),
        )
        return context


class HostImagesView(PlatformAdminMixin, ObjectDetailView):
    """Every image on a host with the stacks using it (the host page loads it)."""

    model = Host
    template_name = "resources/partials/_host_images.html"

    def get_queryset(self):
        return Host.objects.visible_to(self.request.user)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(host=self.object, result=inventory.host_images(self.object))
        return context
