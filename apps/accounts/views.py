"""Settings pages: the profile and personal API tokens (apps/accounts/services.py)."""

from __future__ import annotations

from allauth.socialaccount.models import SocialAccount
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect
from django.views.generic import FormView

from apps.accounts import services
from apps.accounts.forms import TimeZoneForm, TokenCreateForm
from apps.accounts.middleware import preferred_zone_name
from apps.accounts.models import ApiToken, is_directory_managed
from apps.core.generic import ObjectFormView, ServiceFormMixin, SubmitOnceMixin
from apps.core.mixins import TenantScopedMixin
from apps.core.timezones import zone_choices
from apps.tenants.models import Membership


class ProfileView(LoginRequiredMixin, FormView):
    """Who the user is, where they belong, links to the allauth account pages, and the
    time zone every page writes times in."""

    template_name = "accounts/profile.html"
    form_class = TimeZoneForm

    def get_initial(self):
        return {"time_zone": preferred_zone_name(self.request.user)}

    def form_valid(self, form):
        services.set_time_zone(self.request.user, form.cleaned_data["time_zone"])
        zone = form.cleaned_data["time_zone"] or "your browser's zone"
        messages.success(self.request, f"Times are now shown in {zone}.")
        return redirect("accounts:profile")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context["time_zones"] = [name for name, _ in zone_choices()]
        context["social_accounts"] = SocialAccount.objects.filter(user=user)
        context["memberships"] = Membership.objects.filter(user=user).select_related("tenant")
        context["email_addresses"] = user.emailaddress_set.all()
        context["directory_managed"] = is_directory_managed(user)
        return context


class TokenListView(LoginRequiredMixin, SubmitOnceMixin, ServiceFormMixin, FormView):
    """The user's tokens and the form to create one; a new raw key is shown once."""

    template_name = "accounts/tokens.html"
    form_class = TokenCreateForm
    once_redirect = "accounts:tokens"
    once_message = "That token was already created; its key was shown once. Revoke it if lost."

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["tokens"] = (
            ApiToken.objects.visible_to(self.request.user)
            .filter(user=self.request.user)
            .select_related("tenant")
        )
        return context

    def perform(self, form):
        token, raw = services.create_token(actor=self.request.user, **form.cleaned_data)
        # Rendered, not redirected: the raw key is never stored, not even in the session.
        context = self.get_context_data(form=self.get_form_class()(user=self.request.user))
        context.update(new_token=token, raw_key=raw)
        return self.render_to_response(context, status=201)


class TokenRevokeView(TenantScopedMixin, ObjectFormView):
    """Revoke one of the user's tokens, after a confirmation."""

    model = ApiToken
    template_name = "accounts/token_revoke.html"
    context_object_name = "token"

    def get_queryset(self):
        return super().get_queryset().filter(user=self.request.user)

    def perform(self, form):
        services.revoke_token(actor=self.request.user, token=self.object)
        messages.success(self.request, f"Token {self.object.name} revoked.")
        return redirect("accounts:tokens")
