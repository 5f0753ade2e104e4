"""Tenant pages: tenants, members, invitations and environments.

Thin views: each looks objects up through `visible_to` (TenantScopedMixin), calls one
function of apps/tenants/services.py and renders the result.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.timesince import timeuntil
from django.views.decorators.vary import vary_on_headers
from django.views.generic import ListView, TemplateView

from apps.core.generic import CreateFormView, ObjectDetailView, ObjectFormView, SubmitOnceMixin
from apps.core.mixins import PlatformAdminMixin, TenantScopedMixin
from apps.core.roles import Role, can_grant
from apps.core.tenancy import require_role, role_of
from apps.tenants import forms, quotas, services
from apps.tenants.middleware import switch_context
from apps.tenants.models import Environment, Invitation, Membership, Tenant


class TenantListView(TenantScopedMixin, ListView):
    """The tenants the user belongs to (platform admins see every tenant)."""

    model = Tenant
    template_name = "tenants/tenant_list.html"
    context_object_name = "tenants"

    def get_queryset(self):
        return super().get_queryset().prefetch_related("memberships", "environments")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        roles = dict(
            Membership.objects.filter(user=self.request.user).values_list("tenant_id", "role")
        )
        context["rows"] = [(tenant, roles.get(tenant.pk)) for tenant in context["tenants"]]
        return context


class TenantCreateView(CreateFormView):
    template_name = "tenants/tenant_form.html"
    form_class = forms.TenantCreateForm

    def perform(self, form):
        tenant = services.create_tenant(actor=self.request.user, **form.cleaned_data)
        # The person made it to work in it: it becomes the current tenant at once.
        switch_context(self.request.session, tenant)
        environment = tenant.environments.first()
        where = f", in {environment.name}" if environment else ""
        messages.success(
            self.request,
            f"Tenant {tenant.name} created with its environments; you are now working in "
            f"it{where} (switch in the top bar).",
        )
        return redirect("tenants:detail", slug=tenant.slug)

    def check(self, form):
        data = form.cleaned_data
        services.check_new_tenant(
            slug=data.get("slug", ""),
            name=data.get("name", ""),
            description=data.get("description", ""),
        )


class TenantDetailView(TenantScopedMixin, ObjectDetailView):
    """Members with their roles, environments and (for admins) pending invitations."""

    model = Tenant
    template_name = "tenants/tenant_detail.html"
    context_object_name = "tenant"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.object
        user = self.request.user
        my_role = role_of(user, tenant) or (Role.OWNER if user.is_superuser else None)
        is_admin = my_role in (Role.ADMIN, Role.OWNER)
        context.update(
            my_role=my_role,
            is_admin=is_admin,
            is_owner=my_role == Role.OWNER,
            member_rows=member_rows(tenant, user, my_role),
            environments=tenant.environments.all(),
            invitations=[i for i in tenant.invitations.all() if i.is_pending] if is_admin else [],
            quota_lines=quotas.quota_lines(tenant),
            can_set_quotas=user.is_superuser,
        )
        return context


def member_rows(tenant: Tenant, user, my_role: str | None) -> list[dict]:
    """Each membership with what the current user may do to it (the service re-checks)."""
    rows = []
    for membership in tenant.memberships.select_related("user").order_by("user__username"):
        rows.append(member_row(membership, user, my_role))
    return rows


def member_row(membership: Membership, user, my_role: str | None) -> dict:
    manageable = bool(my_role) and can_grant(my_role, membership.role)
    return {
        "membership": membership,
        "is_me": membership.user_id == user.pk,
        "can_change": manageable,
        "can_remove": manageable or membership.user_id == user.pk,
        "form": forms.RoleForm(initial={"role": membership.role}, actor_role=my_role)
        if manageable
        else None,
    }


class TenantUpdateView(TenantScopedMixin, ObjectFormView):
    model = Tenant
    required_role = Role.ADMIN
    template_name = "tenants/tenant_edit.html"
    form_class = forms.TenantEditForm

    def get_initial(self):
        return {"name": self.object.name, "description": self.object.description}

    def perform(self, form):
        services.update_tenant(actor=self.request.user, tenant=self.object, **form.cleaned_data)
        messages.success(self.request, "Tenant updated.")
        return redirect("tenants:detail", slug=self.object.slug)


class TenantQuotaView(PlatformAdminMixin, ObjectFormView):
    """Platform admins set a tenant's quotas (others get 404, as on every admin page)."""

    model = Tenant
    slug_field = "slug"
    template_name = "tenants/tenant_quota.html"
    form_class = forms.QuotaForm

    def get_initial(self):
        return forms.QuotaForm.initial_from(quotas.quota_lines(self.object))

    def perform(self, form):
        services.set_quotas(actor=self.request.user, tenant=self.object, values=form.quota_values())
        messages.success(self.request, f"Quotas of {self.object.name} saved.")
        return redirect("tenants:detail", slug=self.object.slug)


class TenantDeleteView(TenantScopedMixin, ObjectFormView):
    model = Tenant
    required_role = Role.OWNER
    template_name = "tenants/tenant_delete.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        grace = timedelta(seconds=settings.BERTH_TENANT_REMOVAL_GRACE_SECONDS)
        context["removal_grace"] = timeuntil(now + grace, now)
        return context

    def perform(self, form):
        name = self.object.name
        services.delete_tenant(actor=self.request.user, tenant=self.object)
        messages.success(
            self.request,
            f"Tenant {name} deleted: its containers are stopped and will be removed "
            "with its networks and volumes after the grace period.",
        )
        return redirect("tenants:list")


@method_decorator(vary_on_headers("HX-Request"), name="dispatch")
class MemberRoleView(TenantScopedMixin, ObjectFormView):
    """Change a member's role; htmx swaps the member's row, a plain POST redirects."""

    model = Membership
    required_role = Role.ADMIN
    template_name = "tenants/member_role.html"
    form_class = forms.RoleForm

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["actor_role"] = self.actor_role()
        kwargs.setdefault("initial", {})["role"] = self.object.role
        return kwargs

    def actor_role(self) -> str | None:
        return require_role(self.request.user, self.object.tenant, Role.ADMIN)

    def perform(self, form):
        membership = services.change_role(
            actor=self.request.user, membership=self.object, role=form.cleaned_data["role"]
        )
        if self.request.headers.get("HX-Request"):
            row = member_row(membership, self.request.user, self.actor_role())
            return render(self.request, "tenants/partials/_member_row.html", {"row": row})
        messages.success(self.request, f"{membership.user} is now {membership.role}.")
        return redirect("tenants:detail", slug=membership.tenant.slug)


class MemberRemoveView(TenantScopedMixin, ObjectFormView):
    """Remove a member, or leave the tenant when it is the user's own membership."""

    model = Membership
    template_name = "tenants/member_remove.html"

    def perform(self, form):
        membership, tenant = self.object, self.object.tenant
        services.remove_member(actor=self.request.user, membership=membership)
        if membership.user_id == self.request.user.pk and not self.request.user.is_superuser:
            messages.success(self.request, f"You left {tenant.name}.")
            return redirect("tenants:list")
        messages.success(self.request, f"{membership.user} removed from {tenant.name}.")
        return redirect("tenants:detail", slug=tenant.slug)


class InvitationCreateView(TenantScopedMixin, SubmitOnceMixin, ObjectFormView):
    """Invite by e-mail: the link is shown once here and mailed to the address."""

    model = Tenant
    required_role = Role.ADMIN
    template_name = "tenants/invitation_form.html"
    form_class = forms.InvitationForm
    once_message = "That invitation was already sent; its link was shown once and mailed."

    def get_once_redirect(self) -> str:
        return reverse("tenants:detail", kwargs={"slug": self.object.slug})

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["actor_role"] = require_role(self.request.user, self.object, Role.ADMIN)
        return kwargs

    def perform(self, form):
        invitation, raw = services.invite(
            actor=self.request.user, tenant=self.object, **form.cleaned_data
        )
        link = self.request.build_absolute_uri(reverse("invitations:accept", args=[raw]))
        mailed = mail_invitation(invitation, link)
        context = {"tenant": self.object, "invitation": invitation, "link": link, "mailed": mailed}
        return render(self.request, "tenants/invitation_created.html", context)

    def check(self, form):
        if form.cleaned_data.get("email"):
            services.check_invitee(tenant=self.object, email=form.cleaned_data["email"])


def mail_invitation(invitation: Invitation, link: str) -> bool:
    """Send the link; a mail failure is reported on the page, the link still works."""
    context = {"invitation": invitation, "link": link}
    try:
        send_mail(
            subject=f"You are invited to {invitation.tenant.name} on Berth",
            message=render_to_string("tenants/email/invitation.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[invitation.email],
        )
    except OSError:
        return False
    return True


class InvitationRevokeView(TenantScopedMixin, ObjectFormView):
    model = Invitation
    required_role = Role.ADMIN
    template_name = "tenants/invitation_revoke.html"

    def perform(self, form):
        services.revoke_invitation(actor=self.request.user, invitation=self.object)
        messages.success(self.request, f"Invitation of {self.object.email} revoked.")
        return redirect("tenants:detail", slug=self.object.tenant.slug)


class InvitationAcceptView(LoginRequiredMixin, TemplateView):
    """The page behind an invitation link: shows the tenant and role, POST joins.

    The URL carries the raw token (kwarg `token`), never a primary key. An unknown
    token is a 404; a used, revoked or expired link, or one sent to another address,
    says so plainly, and the tenant is shown only to the invited address.

    Signed out, the link leads to the login page (which links to sign-up) and the
    session remembers a pending invitation, so that sign-up opens for the invited
    address even when the operator closed it (apps/accounts/adapters.py).
    """

    model = Invitation
    template_name = "tenants/invitation_accept.html"

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            invitation = services.find_invitation(kwargs.get("token", ""))
            services.remember_invitation(request.session, invitation)
            if invitation is not None and invitation.is_pending:
                messages.info(
                    request,
                    "Sign in to accept your invitation. New to Berth? Sign up with the "
                    "e-mail address the invitation was sent to.",
                )
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        invitation = services.find_invitation(token)
        if invitation is None:
            return self.render_refusal("This invitation link is not valid.", status=404)
        return self.render_to_response(self.accept_context(invitation))

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        try:
            membership = services.accept_invitation(user=request.user, raw_token=token)
        except ValidationError as exc:
            invitation = services.find_invitation(token)
            if invitation is None:
                return self.render_refusal(exc.messages[0], status=404)
            context = self.accept_context(invitation)
            context["problem"] = exc.messages[0]
            return self.render_to_response(context, status=400)
        services.remember_invitation(request.session, None)
        messages.success(request, f"Welcome to {membership.tenant.name}.")
        return HttpResponseRedirect(reverse("tenants:detail", args=[membership.tenant.slug]))

    def accept_context(self, invitation: Invitation) -> dict:
        user = self.request.user
        for_me = bool(user.email) and user.email.lower() == invitation.email.lower()
        problem = None
        if not for_me:
            problem = (
                "This invitation was sent to another e-mail address. "
                "Sign in with the account that uses that address to accept it."
            )
        elif invitation.status != "pending":
            problem = f"This invitation is {invitation.status}."
        elif Membership.objects.filter(tenant=invitation.tenant, user=user).exists():
            problem = "You are already a member of this tenant."
        return {"invitation": invitation if for_me else None, "problem": problem}

    def render_refusal(self, message: str, status: int) -> HttpResponse:
        return self.render_to_response({"invitation": None, "problem": message}, status=status)


class EnvironmentCreateView(TenantScopedMixin, ObjectFormView):
    model = Tenant
    required_role = Role.ADMIN
    template_name = "tenants/environment_form.html"
    form_class = forms.EnvironmentCreateForm

    def perform(self, form):
        env = services.create_environment(
            actor=self.request.user, tenant=self.object, **form.cleaned_data
        )
        messages.success(self.request, f"Environment {env.name} created.")
        return redirect("tenants:environment", pk=env.pk)

    def check(self, form):
        data = form.cleaned_data
        services.check_new_environment(
            tenant=self.object,
            slug=data.get("slug", ""),
            name=data.get("name", ""),
            description=data.get("description", ""),
        )


class EnvironmentDetailView(TenantScopedMixin, ObjectDetailView):
    model = Environment
    template_name = "tenants/environment_detail.html"
    context_object_name = "environment"

    def get_queryset(self):
        return super().get_queryset().select_related("tenant").prefetch_related("hosts")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        role = role_of(self.request.user, self.object.tenant)
        context["is_admin"] = self.request.user.is_superuser or role in (Role.ADMIN, Role.OWNER)
        return context


class EnvironmentUpdateView(TenantScopedMixin, ObjectFormView):
    model = Environment
    required_role = Role.ADMIN
    template_name = "tenants/environment_form.html"
    form_class = forms.EnvironmentEditForm

    def get_initial(self):
        return {"name": self.object.name, "description": self.object.description}

    def perform(self, form):
        services.update_environment(
            actor=self.request.user, environment=self.object, **form.cleaned_data
        )
        messages.success(self.request, "Environment updated.")
        return redirect("tenants:environment", pk=self.object.pk)


class EnvironmentDeleteView(TenantScopedMixin, ObjectFormView):
    model = Environment
    required_role = Role.ADMIN
    template_name = "tenants/environment_delete.html"

    def perform(self, form):
        tenant, name = self.object.tenant, self.object.name
        services.delete_environment(actor=self.request.user, environment=self.object)
        messages.success(self.request, f"Environment {name} deleted.")
        return redirect("tenants:detail", slug=tenant.slug)
