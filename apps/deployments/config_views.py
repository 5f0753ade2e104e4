"""Changing a running stack from the portal: its answers or compose file (preview, then
apply), and revealing one secret answer on the stack page's Configuration card.

Thin views: the stack is found through `visible_to` (a foreign stack is 404), the role
is checked before the form is shown, and every change is one service call.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render

from apps.core.generic import ObjectFormView
from apps.core.mixins import form_errors_from
from apps.core.roles import Role
from apps.deployments import config_forms, configuration, exceptions, services
from apps.deployments.exception_forms import ConfirmExceptionsMixin, show_confirmation
from apps.deployments.models import Route, Stack
from apps.deployments.spec import routes_of
from apps.deployments.views import StackScopedMixin

CHANGED_SINCE = (
    "What would change is not what you previewed (the stack or your edit changed since): "
    "check the changes below and apply again."
)
NOTHING = "Nothing would change: no new revision was made."


def has_routes(stack: Stack) -> bool:
    """Whether a strategy choice can act: a canary needs a routed service."""
    if Route.objects.filter(stack=stack).exists():
        return True
    spec = stack.current_revision.spec if stack.current_revision else {}
    return any(routes_of(spec, name) for name in (spec.get("berth") or {}).get("services") or {})


class StackEditView(ConfirmExceptionsMixin, StackScopedMixin, ObjectFormView):
    """/stacks/<pk>/edit/: the stack's answers (a template stack) or compose file (a
    compose stack). "Preview changes" shows what would change and writes nothing;
    "Apply" redeploys, only if it is still exactly the change that was previewed."""

    required_role = Role.MEMBER
    template_name = "deployments/stack_edit.html"

    def get_form_class(self) -> type:
        if self.object.template_version is not None:
            return config_forms.AnswersForm
        return config_forms.ComposeEditForm

    def get_form_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_form_kwargs()
        kwargs["strategies"] = has_routes(self.object)
        if self.object.template_version is not None:
            kwargs.update(version=self.object.template_version, answers=self.object.answers)
        else:
            kwargs.setdefault("initial", {})["compose"] = self.object.compose
        return kwargs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("stack", self.object)
        return context

    def form_valid(self, form: config_forms.EditForm) -> HttpResponse:
        stack, user = self.object, self.request.user
        change = form.change()
        try:
            preview = services.preview_redeploy(
                user, stack, strategy=form.chosen_strategy(), **change
            )
        except ValidationError as exc:
            form_errors_from(exc, form)
            lines = configuration.problem_lines(change.get("compose") or "", exc)
            return self.render_to_response(self.get_context_data(form=form, problem_lines=lines))
        show_confirmation(form, preview)
        context = {"form": form, "preview": preview}
        if self.request.POST.get("action") != "apply":
            return self.render_to_response(self.get_context_data(**context))
        if not preview["changed"]:
            messages.info(self.request, NOTHING)
            return self.render_to_response(self.get_context_data(**context))
        if self.request.POST.get("fingerprint") != preview["fingerprint"]:
            return self.render_to_response(self.get_context_data(**context, stale=CHANGED_SINCE))
        try:
            with exceptions.confirmed(form.cleaned_data.get(exceptions.CONFIRM_FIELD)):
                stack = services.redeploy(user, stack, strategy=form.chosen_strategy(), **change)
        except ValidationError as exc:
            form_errors_from(exc, form)
            show_confirmation(form, preview)
            return self.render_to_response(self.get_context_data(**context))
        revision = stack.current_revision
        messages.success(self.request, f"Redeploying {stack.name} as r{revision.number}.")
        return redirect("stacks:detail", pk=stack.pk)


class StackRevealAnswerView(StackScopedMixin, ObjectFormView):
    """POST-only (htmx): one secret answer's value for a member or more; recorded."""

    http_method_names = ["post"]
    required_role = Role.MEMBER
    form_class = config_forms.RevealForm

    def perform(self, form: config_forms.RevealForm) -> HttpResponse:
        name = form.cleaned_data["name"]
        value = configuration.reveal_answer(self.request.user, self.object, name)
        response = render(
            self.request,
            "deployments/partials/_revealed_answer.html",
            {"value": value, "name": name},
        )
        response["Cache-Control"] = "no-store"
        return response

    def form_invalid(self, form: config_forms.RevealForm) -> HttpResponse:
        errors = "; ".join(e for errs in form.errors.values() for e in errs)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
