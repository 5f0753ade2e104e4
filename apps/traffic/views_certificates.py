"""The certificates page of a tenant (/traffic/certificates/): what each host name
presents over HTTPS, the form to upload a certificate for a route whose TLS is
"uploaded", and deletion.

The page is the portal's face of /api/v1/certificates/: rows come through `visible_to`,
uploads and deletions go through the same service functions (apps.traffic.certificates),
so a bad chain or key is the same message, here next to its field. The private key is
never put into a page, not even the form shown again with errors.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.generic import FormView

from apps.core.generic import ObjectFormView, ServiceFormMixin
from apps.core.mixins import TenantScopedMixin
from apps.core.roles import Role, rank
from apps.core.tenancy import require_role, role_of
from apps.deployments.models import Route
from apps.tenants.models import Tenant, slug_validator
from apps.traffic import certificates
from apps.traffic.forms import CertificateUploadForm
from apps.traffic.models import Certificate


def page_tenant(request: HttpRequest) -> Tenant | None:
    """The tenant whose certificates the page shows: the one named by `?tenant=<slug>`
    (a stack page links here for its own tenant, which may not be the current one) among
    those the user may see (another is 404), else the current tenant."""
    slug = request.GET.get("tenant", "")
    if slug:
        try:
            slug_validator(slug)  # never a lookup PostgreSQL refuses (a NUL byte)
        except ValidationError as exc:
            raise Http404("No such tenant.") from exc
        return get_object_or_404(Tenant.objects.visible_to(request.user), slug=slug)
    return request.tenant


def page_url(tenant: Tenant | None, request: HttpRequest, **query: str) -> str:
    """The certificates page of `tenant`; names the tenant only when it is not the
    current one, so the usual link stays /traffic/certificates/."""
    if tenant is not None and tenant != request.tenant:
        query = {"tenant": tenant.slug, **query}
    url = reverse("traffic:certificates")
    return f"{url}?{urlencode(query)}" if query else url


def can_act(user: Any, tenant: Tenant | None) -> bool:
    """For showing the form and buttons only; the services check again."""
    if tenant is None:
        return False
    if user.is_superuser:
        return True
    role = role_of(user, tenant)
    return role is not None and rank(role) >= rank(Role.MEMBER)


def certificates_context(user: Any, tenant: Tenant | None) -> dict[str, Any]:
    """The tenant's certificates, each with the routes on its host name, and the routes
    whose TLS is "uploaded" that still wait for one."""
    if tenant is None:
        return {"certificates": [], "waiting": []}
    rows = list(Certificate.objects.visible_to(user).filter(tenant=tenant).order_by("hostname"))
    routes = (
        Route.objects.visible_to(user)
        .filter(tenant=tenant)
        .select_related("stack", "service")
        .order_by("hostname", "path")
    )
    by_host: dict[str, list[Route]] = defaultdict(list)
    for route in routes:
        by_host[route.hostname].append(route)
    for certificate in rows:
        certificate.routes = by_host.get(certificate.hostname, [])
    have = {c.hostname for c in rows}
    waiting = [
        route
        for hostname, host_routes in by_host.items()
        if hostname not in have
        for route in host_routes
        if route.tls == Route.Tls.UPLOADED
    ]
    return {"certificates": rows, "waiting": waiting}


class CertificateListView(LoginRequiredMixin, ServiceFormMixin, FormView):
    """GET: the tenant's certificates and the upload form (members; viewers read).
    POST: upload (a ValidationError of the service lands on its field, status 400)."""

    form_class = CertificateUploadForm
    template_name = "traffic/certificates.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            self.tenant = page_tenant(request)
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self.tenant is not None:
            require_role(request.user, self.tenant, Role.MEMBER)  # a viewer: the 403 page
        return super().post(request, *args, **kwargs)

    def get_initial(self) -> dict[str, Any]:
        return {"hostname": self.request.GET.get("hostname", "")[:253]}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(certificates_context(self.request.user, self.tenant))
        context.update(
            tenant=self.tenant,
            can_act=can_act(self.request.user, self.tenant),
            form_action=page_url(self.tenant, self.request),
        )
        return context

    def perform(self, form: CertificateUploadForm) -> HttpResponse:
        if self.tenant is None:
            raise ValidationError("Choose a tenant first (top bar).")
        data = form.cleaned_data
        certificate = certificates.upload_certificate(
            actor=self.request.user,
            hostname=data["hostname"],
            chain_pem=data.get("chain") or "",
            key_pem=data.get("key") or "",
            tenant_slug=self.tenant.slug,
        )
        messages.success(
            self.request,
            f"Certificate for {certificate.hostname} uploaded, "
            f"valid until {certificate.not_after:%Y-%m-%d} (UTC).",
        )
        return HttpResponseRedirect(page_url(self.tenant, self.request))

    def check(self, form: CertificateUploadForm) -> None:
        """The host name's, chain's and key's problems with the form's own; a PEM whose
        file was refused is not also reported missing."""
        data = form.cleaned_data
        try:
            certificates.check_upload(
                data.get("hostname", ""), data.get("chain") or "", data.get("key") or ""
            )
        except ValidationError as exc:
            refused = {f for f in ("chain", "key") if form.has_error(f"{f}_file")}
            kept = {k: v for k, v in exc.message_dict.items() if k not in refused}
            if kept:
                raise ValidationError(kept) from None

    def form_invalid(self, form: CertificateUploadForm) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class CertificateDeleteView(TenantScopedMixin, ObjectFormView):
    """Confirm, then delete: the frontier stops presenting it at once; a route asking for
    a generated or ACME certificate gets a new one at the next certificates pass."""

    model = Certificate
    required_role = Role.MEMBER
    template_name = "traffic/certificate_delete.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        certificate = self.object
        routes = Route.objects.visible_to(self.request.user).filter(
            tenant_id=certificate.tenant_id, hostname=certificate.hostname
        )
        context.update(
            certificate=certificate,
            routes=list(routes.select_related("stack").order_by("path")),
            cancel_url=page_url(certificate.tenant, self.request),
        )
        return context

    def perform(self, form: Any) -> HttpResponse:
        certificate = self.object
        tenant, hostname = certificate.tenant, certificate.hostname
        certificates.delete_certificate(actor=self.request.user, certificate=certificate)
        messages.success(self.request, f"Certificate for {hostname} deleted.")
        return HttpResponseRedirect(page_url(tenant, self.request))
