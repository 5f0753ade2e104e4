"""Generic HTML views: one visible object, a form, and one service call.

Every page that changes something follows the same steps, so they live here once:
look the object up through `visible_to` (a foreign object is 404), check the role the
page needs with the tenants service (too low a role is the 403 page), and on a valid
POST call one service function. A service `ValidationError` lands on the form, field
by field, so bad input is a message next to the field, never a 500.
"""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, resolve_url
from django.views.generic import DetailView, FormView
from django.views.generic.detail import SingleObjectMixin

from apps.core.mixins import form_errors_from
from apps.core.tenancy import require_role


def tenant_of(obj: Any):
    """The tenant an object belongs to (a Tenant is its own). Told by the model's label,
    so this plumbing imports no domain app."""
    meta = getattr(obj, "_meta", None)
    if meta is not None and meta.label_lower == "tenants.tenant":
        return obj
    return getattr(obj, "tenant", None)


class ServiceFormMixin:
    """Calls `perform(form)` on a valid form and maps service errors onto the form.

    One submit shows every problem: when the form's own checks fail (a required field
    left empty), `check(form)` still runs the service's checks on what is valid, so a
    service error (a slug already taken) is not held back for a second submit.
    `service_field_names` maps a service's error keys to the form's field names.
    """

    service_field_names: dict[str, str] = {}

    def perform(self, form: forms.Form) -> HttpResponse:
        raise NotImplementedError

    def check(self, form: forms.Form) -> None:
        """The service's checks of the form's valid fields, changing nothing; raises
        ValidationError. Run only on a form already invalid. Default: no check."""

    def form_valid(self, form: forms.Form) -> HttpResponse:
        form.service_checked = True  # perform's errors are the service's checks
        try:
            return self.perform(form)
        except ValidationError as exc:
            form_errors_from(exc, form, self.service_field_names)
            return self.form_invalid(form)

    def form_invalid(self, form: forms.Form) -> HttpResponse:
        if not getattr(form, "service_checked", False):
            form.service_checked = True
            try:
                self.check(form)
            except ValidationError as exc:
                form_errors_from(exc, form, self.service_field_names, only_new=True)
            except PermissionDenied:
                pass  # the checks are a courtesy; the submit itself is refused by perform
        return super().form_invalid(form)


class SubmitOnceMixin:
    """For forms whose success page shows a secret once (a token, an invitation link).

    The page's reply to the POST carries the secret, which is never stored; so a reload
    would send the form again and create a second one. Each rendered form carries a
    one-time id; an id already used redirects to `once_redirect` with a message instead.
    Put `{% include "includes/submit_once.html" %}` inside the form.
    """

    SESSION_KEY = "berth_used_submissions"
    once_redirect = ""
    once_message = "That form was already sent; what it created was shown once."

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["submission_id"] = secrets.token_urlsafe(16)
        return context

    def form_valid(self, form):
        submission = self.request.POST.get("submission", "")[:64]
        used = self.request.session.get(self.SESSION_KEY, [])
        if submission and submission in used:
            messages.info(self.request, self.once_message)
            return redirect(self.get_once_redirect())
        response = super().form_valid(form)
        if submission and not form.errors:
            self.request.session[self.SESSION_KEY] = [*used, submission][-50:]
        return response

    def get_once_redirect(self) -> str:
        return resolve_url(self.once_redirect)


class CreateFormView(LoginRequiredMixin, ServiceFormMixin, FormView):
    """A form that creates something not under an existing object (e.g. a tenant)."""


class LookupFirstMixin:
    """Find the object before dispatching on the method: a foreign object is 404 for
    every method (never a 405 that would confirm the URL exists)."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.object = self.get_object()
        return super().dispatch(request, *args, **kwargs)


class ObjectDetailView(LookupFirstMixin, DetailView):
    """A read-only page about one object; combine with a scoping mixin."""

    def get(self, request, *args, **kwargs):
        return self.render_to_response(self.get_context_data(object=self.object))

    def get_queryset(self):
        return self.model.objects.visible_to(self.request.user)


class ObjectFormView(ServiceFormMixin, SingleObjectMixin, FormView):
    """A form about one object found through the view's scoped `get_queryset()`.

    Combine with TenantScopedMixin or PlatformAdminMixin, which provide login and the
    queryset. `required_role` (if set) is checked on the object's tenant before the
    form is shown, so a viewer is refused the edit page, not only its POST.
    """

    required_role: str | None = None
    form_class = forms.Form

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return super().dispatch(request, *args, **kwargs)
        self.object = self.get_object()
        if self.required_role is not None:
            require_role(request.user, tenant_of(self.object), self.required_role)
        return super().dispatch(request, *args, **kwargs)

    def get_queryset(self):
        # Never the unscoped default manager: TenantScopedMixin narrows this by role.
        return self.model.objects.visible_to(self.request.user)
