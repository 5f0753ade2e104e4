"""The deploy forms' "I confirm" checkbox for exceptions to the compose policy.

Only platform admins get it (nobody else can be granted what it confirms), and only
once it matters: the field is hidden until the service refuses a file for want of the
confirmation (the refusal, listing the exceptions, lands on the box, which then shows),
or while it is ticked. A box shown for every file would mostly do nothing. Ticked, the
form's service call runs inside `exceptions.confirmed()`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpResponse

from apps.deployments.exceptions import CONFIRM_FIELD, confirmed


def confirm_field() -> forms.BooleanField:
    return forms.BooleanField(
        required=False,
        label="I confirm deploying with these exceptions to the compose policy "
        "(as a platform admin)",
        help_text="Needed only when the file uses exceptions (privileged mode, host "
        "mounts, host network...) that your environment does not grant: the stack is "
        "marked with them and members cannot change it.",
    )


class ConfirmExceptionsMixin:
    """For a ServiceFormMixin view whose service call may write a revision."""

    def with_confirmation(self, form: forms.Form | None) -> forms.Form | None:
        user = self.request.user  # type: ignore[attr-defined]
        if form is not None and getattr(user, "is_superuser", False):
            field = form.fields[CONFIRM_FIELD] = confirm_field()
            ticked = form.is_bound and form.data.get(CONFIRM_FIELD) in ("on", "true", "True")
            if not ticked:
                field.widget = forms.HiddenInput()
        return form

    def form_invalid(self, form: forms.Form) -> HttpResponse:
        field = form.fields.get(CONFIRM_FIELD)
        if field is not None and CONFIRM_FIELD in form.errors:
            field.widget = forms.CheckboxInput()  # the refusal names what to confirm
        return super().form_invalid(form)  # type: ignore[misc]

    def get_form(self, form_class: Any = None) -> forms.Form | None:
        return self.with_confirmation(super().get_form(form_class))  # type: ignore[misc]

    def form_valid(self, form: forms.Form) -> HttpResponse:
        with confirmed(form.cleaned_data.get(CONFIRM_FIELD)):
            return super().form_valid(form)  # type: ignore[misc]


def show_confirmation(form: forms.Form, preview: dict[str, Any]) -> None:
    """A previewed change that brings exceptions shows the box before Apply is pressed
    (the preview lists them), rather than after a refusal."""
    field = form.fields.get(CONFIRM_FIELD)
    if field is not None and (preview.get("exceptions_needed") or CONFIRM_FIELD in form.errors):
        field.widget = forms.CheckboxInput()
