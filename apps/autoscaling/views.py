"""The service's autoscaling page: its settings (a form) and its recent decisions."""

from __future__ import annotations

from django.contrib import messages
from django.forms.models import model_to_dict
from django.shortcuts import redirect

from apps.autoscaling import services
from apps.autoscaling.forms import AutoscalerForm
from apps.autoscaling.models import Autoscaler
from apps.core.generic import ObjectFormView
from apps.core.mixins import TenantScopedMixin
from apps.core.roles import Role, rank
from apps.core.tenancy import role_of
from apps.deployments.models import Service


class ServiceAutoscalingView(TenantScopedMixin, ObjectFormView):
    """GET: the settings, the latest judgement and the decisions; POST: save (members;
    refusals land on the form's fields)."""

    model = Service
    template_name = "autoscaling/service.html"
    form_class = AutoscalerForm

    def get_queryset(self):
        return super().get_queryset().select_related("stack__tenant")

    def scaler(self) -> Autoscaler:
        return Autoscaler.objects.filter(service=self.object).first() or Autoscaler(
            service=self.object, enabled=False
        )

    def get_initial(self):
        return model_to_dict(self.scaler(), fields=services.FIELDS)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        role = role_of(self.request.user, self.object.stack.tenant)
        context.update(
            service=self.object,
            stack=self.object.stack,
            scaler=self.scaler(),
            decisions=services.decisions(self.object),
            can_act=self.request.user.is_superuser
            or (role is not None and rank(role) >= rank(Role.MEMBER)),
        )
        return context

    def perform(self, form):
        scaler = services.configure(self.request.user, self.object, form.cleaned_data)
        state = "on" if scaler.enabled else "off"
        messages.success(self.request, f"Autoscaling of {self.object.name} is {state}.")
        return redirect("autoscaling:service", pk=self.object.pk)
