"""Hosts pages for platform admins: list, detail, add, edit, remove, check, drain.

Every change goes through apps/hosts/services.py; "check now" runs one heartbeat and,
under htmx, answers with the host's row partial (the list includes the same partial).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.vary import vary_on_headers
from django.views.generic import ListView

from apps.core.generic import CreateFormView, ObjectDetailView, ObjectFormView
from apps.core.mixins import PlatformAdminMixin
from apps.hosts import services
from apps.hosts.engine import EngineError
from apps.hosts.forms import HostCreateForm, HostForm, NodeEngineForm, format_labels
from apps.hosts.models import Host, SwarmNode


class HostScopedMixin(PlatformAdminMixin):
    """Superusers only (others get 404), and lookups through `visible_to`."""

    model = Host

    def get_queryset(self):
        return Host.objects.visible_to(self.request.user)


class HostListView(HostScopedMixin, ListView):
    template_name = "hosts/host_list.html"
    context_object_name = "hosts"


class HostDetailView(HostScopedMixin, ObjectDetailView):
    template_name = "hosts/host_detail.html"
    context_object_name = "host"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["environments"] = self.object.environments.select_related("tenant")
        if self.object.is_swarm:
            context["nodes"] = services.swarm_nodes(self.object)
        return context


def check_host_form(form: HostForm, host: Host | None = None) -> None:
    """The service's checks of a refused host form's valid fields (a bad label line
    must not hide a taken name until the next submit)."""
    draft = Host(**{f: getattr(host, f) for f in HOST_FIELDS}) if host else Host(labels={})
    if host is not None:
        draft.pk = host.pk
    for key, value in form.cleaned_data.items():
        if key in HOST_FIELDS and not (key == "tls_client_key" and not value and host):
            setattr(draft, key, value)
    services.validate_host(draft)


HOST_FIELDS = ("name", "endpoint", "tls_ca_cert", "tls_client_cert", "tls_client_key", "labels")


class HostCreateView(PlatformAdminMixin, CreateFormView):
    template_name = "hosts/host_form.html"
    form_class = HostCreateForm

    def check(self, form):
        check_host_form(form)

    def perform(self, form):
        host = services.register_host(actor=self.request.user, **form.cleaned_data)
        services.heartbeat(host.pk)
        messages.success(self.request, f"Host {host.name} added.")
        return redirect("hosts:detail", pk=host.pk)


class HostUpdateView(HostScopedMixin, ObjectFormView):
    template_name = "hosts/host_form.html"
    form_class = HostForm
    context_object_name = "host"

    def get_initial(self):
        host = self.object
        fields = ("name", "endpoint", "tls_ca_cert", "tls_client_cert")
        return {**{f: getattr(host, f) for f in fields}, "labels": format_labels(host.labels)}

    def perform(self, form):
        fields = dict(form.cleaned_data)
        if not fields["tls_client_key"] and fields["tls_client_cert"]:
            # The private key is never echoed back into the page: empty means "keep it".
            fields["tls_client_key"] = self.object.tls_client_key
        host = services.update_host(actor=self.request.user, host=self.object, **fields)
        messages.success(self.request, f"Host {host.name} saved.")
        return redirect("hosts:detail", pk=host.pk)

    def check(self, form):
        check_host_form(form, self.object)


class HostDeleteView(HostScopedMixin, ObjectFormView):
    template_name = "hosts/host_delete.html"
    context_object_name = "host"

    def perform(self, form):
        services.remove_host(actor=self.request.user, host=self.object)
        messages.success(self.request, f"Host {self.object.name} removed.")
        return redirect("hosts:list")


def host_response(request, host: Host, message: str):
    """The row partial for htmx (from the list), else back to where the user was."""
    if request.headers.get("HX-Request"):
        return render(request, "hosts/partials/_host_row.html", {"host": host})
    messages.info(request, message)
    if request.POST.get("next") == "list":
        return redirect("hosts:list")
    return redirect("hosts:detail", pk=host.pk)


@method_decorator(vary_on_headers("HX-Request"), name="dispatch")
class HostCheckView(HostScopedMixin, ObjectFormView):
    """Run one heartbeat now; an unreachable engine is shown, never raised."""

    http_method_names = ["post"]

    def perform(self, form):
        host = services.heartbeat(self.object.pk) or self.object
        state = host.get_state_display().lower()
        return host_response(self.request, host, f"Host {host.name} checked: {state}.")


@method_decorator(vary_on_headers("HX-Request"), name="dispatch")
class HostDrainView(HostScopedMixin, ObjectFormView):
    """Drain (no new work) or activate a host; POST `draining` = 1 or 0."""

    http_method_names = ["post"]

    def perform(self, form):
        draining = self.request.POST.get("draining") == "1"
        host = services.set_draining(actor=self.request.user, host=self.object, draining=draining)
        verb = "draining" if draining else "active again"
        return host_response(self.request, host, f"Host {host.name} is {verb}.")


class SwarmNodeAvailabilityView(HostScopedMixin, View):
    """Drain, pause or activate one node of a Swarm cluster host (POST `availability`).

    Refusals (bad input, a node that left, an engine that does not answer) come back
    as a message on the host page, never as an error page."""

    http_method_names = ["post"]

    def post(self, request, pk: int, node_id: str):
        host = get_object_or_404(self.get_queryset(), pk=pk)
        availability = request.POST.get("availability", "")
        try:
            node = services.set_node_availability(
                actor=request.user, host=host, node_id=node_id, availability=availability
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except EngineError as exc:
            messages.error(request, f"Swarm did not change the node: {exc.message}")
        else:
            shown = node.get_availability_display().lower()
            messages.success(request, f"Node {node.hostname} is {shown}.")
        return redirect(reverse("hosts:detail", args=[host.pk]) + "#nodes")


class SwarmNodeEngineView(HostScopedMixin, ObjectFormView):
    """Set, change or remove one Swarm node's own engine endpoint (platform admins): the
    shell, live stats and inspect then reach the tasks on that node. The client key is
    never shown again; left empty with a certificate, the stored one is kept."""

    template_name = "hosts/node_engine_form.html"
    form_class = NodeEngineForm
    context_object_name = "host"

    def get_node(self) -> SwarmNode:
        return get_object_or_404(
            SwarmNode, host=self.object, node_id=self.kwargs["node_id"], gone_at__isnull=True
        )

    def get_initial(self):
        node = self.get_node()
        return {
            "endpoint": node.engine_endpoint,
            "tls_ca_cert": node.engine_tls_ca_cert,
            "tls_client_cert": node.engine_tls_client_cert,
        }

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "node": self.get_node()}

    def perform(self, form):
        node = self.get_node()
        fields = dict(form.cleaned_data)
        if not fields["tls_client_key"] and fields["tls_client_cert"]:
            fields["tls_client_key"] = node.engine_tls_client_key  # never echoed back
        node = services.set_node_engine(
            actor=self.request.user, host=self.object, node_id=node.node_id, **fields
        )
        shown = f"set to {node.engine_endpoint}" if node.engine_endpoint else "removed"
        messages.success(self.request, f"Node {node.hostname}: engine endpoint {shown}.")
        return redirect(reverse("hosts:detail", args=[self.object.pk]) + "#nodes")
