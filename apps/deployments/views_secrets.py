"""The Secrets page of an environment: list its secrets and configs, add, rotate, delete.

Viewers see names, versions and digests; members and above add, rotate and delete. A
secret's value is never shown again once saved (the rotate form starts empty); a
config's value is shown to members. Every change is one call to apps.deployments.
secret_store, whose messages land under the form's fields.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.urls import reverse

from apps.core.generic import ObjectFormView
from apps.core.mixins import TenantScopedMixin
from apps.core.roles import Role
from apps.deployments import secret_store
from apps.deployments.models import Secret
from apps.deployments.views import can
from apps.tenants.models import Environment

VALUE_HELP = "UTF-8 text, at most 500 KiB. A secret's value is never shown again once saved."


class SecretForm(forms.Form):
    kind = forms.ChoiceField(choices=Secret.Kind.choices, initial=Secret.Kind.SECRET)
    name = forms.CharField(
        max_length=64,
        help_text="What compose files call it: letters, digits, '_', '.' and '-'.",
        widget=forms.TextInput(attrs={"placeholder": "db_password", "autocomplete": "off"}),
    )
    value = forms.CharField(
        strip=False,
        help_text=VALUE_HELP,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "autocomplete": "off"}),
    )


class RotateForm(forms.Form):
    value = forms.CharField(
        label="New value",
        strip=False,
        help_text=VALUE_HELP + " The stacks using it are redeployed with the new value.",
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "autocomplete": "off"}),
    )


def secrets_url(environment_id: int) -> str:
    return reverse("secrets:list", args=[environment_id])


class EnvironmentSecretsView(TenantScopedMixin, ObjectFormView):
    """The environment's entries, and the form that adds one (POST: members)."""

    model = Environment
    template_name = "deployments/secrets.html"
    form_class = SecretForm

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        environment, user = self.object, self.request.user
        entries = list(Secret.objects.visible_to(user).filter(environment=environment))
        for entry in entries:
            entry.shown_value = secret_store.config_value(user, entry)
        context.update(
            environment=environment,
            entries=entries,
            can_act=can(user, environment.tenant, Role.MEMBER),
        )
        return context

    def perform(self, form):
        entry = secret_store.create_entry(self.request.user, self.object, **form.cleaned_data)
        messages.success(self.request, f"{entry.get_kind_display()} {entry.name} saved.")
        return redirect(secrets_url(self.object.pk))


class SecretRotateView(TenantScopedMixin, ObjectFormView):
    """A new value for one entry (members and above)."""

    model = Secret
    required_role = Role.MEMBER
    template_name = "deployments/secret_rotate.html"
    form_class = RotateForm

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["entry"] = self.object
        context["users"] = secret_store.stacks_using(self.object)
        return context

    def perform(self, form):
        entry = secret_store.rotate_entry(self.request.user, self.object, **form.cleaned_data)
        messages.success(self.request, f"{entry.name} is now at version {entry.version}.")
        return redirect(secrets_url(entry.environment_id))


class SecretDeleteView(TenantScopedMixin, ObjectFormView):
    """POST-only: delete an entry no stack uses (the page's button confirms first)."""

    model = Secret
    http_method_names = ["post"]

    def form_valid(self, form):
        entry = self.object
        try:
            secret_store.delete_entry(self.request.user, entry)
            messages.success(self.request, f"{entry.get_kind_display()} {entry.name} deleted.")
        except ValidationError as exc:
            messages.error(self.request, " ".join(exc.messages))
        return redirect(secrets_url(entry.environment_id))
