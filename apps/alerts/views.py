"""The alerts pages of the current tenant: alerts (open and history, acknowledge,
silence), rules (create, edit, delete) and channels (create, edit, delivery log).

Rows come through `visible_to`; every change is one service call (apps.alerts.services)
whose ValidationError lands on the form's field (status 400), and whose role check
answers a viewer with the 403 page.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.generic import FormView, TemplateView

from apps.alerts import services
from apps.alerts.forms import AlertChannelForm, AlertRuleForm, ChannelEditForm, SilenceForm
from apps.alerts.models import Alert, AlertChannel, AlertRule, Delivery, Silence
from apps.alerts.rules import KIND_FIELDS
from apps.core.generic import ObjectFormView, ServiceFormMixin
from apps.core.mixins import TenantScopedMixin
from apps.core.roles import Role, rank
from apps.core.tenancy import require_role, role_of


def can_act(user: Any, tenant: Any) -> bool:
    """For showing forms and buttons only; the services check again."""
    if tenant is None:
        return False
    role = Role.OWNER if user.is_superuser else role_of(user, tenant)
    return role is not None and rank(role) >= rank(Role.MEMBER)


class Status400Mixin:
    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class TenantPageMixin(LoginRequiredMixin):
    """A page of the current tenant (the top bar's)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.tenant = getattr(request, "tenant", None)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(tenant=self.tenant, can_act=can_act(self.request.user, self.tenant))
        return context


class AlertBadgeView(LoginRequiredMixin, TemplateView):
    """The top bar's badge alone: the page polls it (htmx), so a firing alert shows up
    without a reload. The count comes from the context processor, as on every page."""

    template_name = "includes/alerts_badge.html"


class AlertListView(TenantPageMixin, TemplateView):
    """Open alerts first (firing, then pending), the last 50 resolved, active silences."""

    template_name = "alerts/alerts.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if self.tenant is None:
            return context
        now = timezone.now()
        alerts = Alert.objects.visible_to(self.request.user).filter(tenant=self.tenant)
        alerts = alerts.select_related("rule", "acknowledged_by")
        context.update(
            now=now,
            open_alerts=list(alerts.filter(state__in=Alert.OPEN).order_by("state", "-started_at")),
            resolved=list(alerts.filter(state=Alert.State.RESOLVED).order_by("-resolved_at")[:50]),
            silences=list(
                Silence.objects.visible_to(self.request.user)
                .filter(tenant=self.tenant, ends_at__gt=now)
                .select_related("rule", "created_by")
            ),
        )
        return context


class AlertAckView(TenantScopedMixin, ObjectFormView):
    model = Alert
    required_role = Role.MEMBER
    template_name = "alerts/confirm.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            title=f"Acknowledge {self.object.rule.name} on {self.object.subject}?",
            confirm_label="Acknowledge",
            cancel_url=reverse("alerts:list"),
            **kwargs,
        )

    def perform(self, form: Any) -> HttpResponse:
        services.acknowledge(self.request.user, self.object)
        messages.success(self.request, "Alert acknowledged.")
        return HttpResponseRedirect(reverse("alerts:list"))


class AlertSilenceView(TenantScopedMixin, Status400Mixin, ObjectFormView):
    model = Alert
    required_role = Role.MEMBER
    form_class = SilenceForm
    template_name = "alerts/silence.html"

    def perform(self, form: SilenceForm) -> HttpResponse:
        alert, data = self.object, form.cleaned_data
        services.create_silence(
            self.request.user,
            alert.tenant,
            ends_at=timezone.now() + timedelta(minutes=data["minutes"]),
            rule=alert.rule if data["match"] in ("alert", "rule") else None,
            subject_key=alert.subject_key if data["match"] in ("alert", "subject") else "",
            comment=data.get("comment", ""),
        )
        messages.success(self.request, f"Silenced for {data['minutes']} minutes.")
        return HttpResponseRedirect(reverse("alerts:list"))


class SilenceEndView(TenantScopedMixin, ObjectFormView):
    model = Silence
    required_role = Role.MEMBER
    template_name = "alerts/confirm.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            title="End this silence now?",
            confirm_label="End silence",
            cancel_url=reverse("alerts:list"),
            **kwargs,
        )

    def perform(self, form: Any) -> HttpResponse:
        services.expire_silence(self.request.user, self.object)
        messages.success(self.request, "Silence ended.")
        return HttpResponseRedirect(reverse("alerts:list"))


# --- rules ---------------------------------------------------------------------------------------


class RuleListView(TenantPageMixin, TemplateView):
    template_name = "alerts/rules.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        rules = AlertRule.objects.visible_to(self.request.user).filter(tenant=self.tenant)
        context["rules"] = list(
            rules.select_related("environment", "stack").prefetch_related("channels")
        )
        return context


class RuleFormMixin(Status400Mixin, ServiceFormMixin):
    form_class = AlertRuleForm
    template_name = "alerts/rule_form.html"

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "tenant": self.rule_tenant()}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(kind_fields=KIND_FIELDS, **kwargs)

    def check(self, form: AlertRuleForm) -> None:
        services.clean_rule(self.rule_tenant(), form.cleaned_data)


class RuleCreateView(TenantPageMixin, RuleFormMixin, FormView):
    def rule_tenant(self):
        return self.tenant

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if request.user.is_authenticated and tenant is not None:
            require_role(request.user, tenant, Role.MEMBER)
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self) -> dict[str, Any]:
        return {
            "kind": "metric",
            "metric": "cpu_percent",
            "comparison": "gt",
            "threshold": 80,
            "duration_seconds": 120,
            "window_seconds": 600,
            "enabled": True,
        }

    def perform(self, form: AlertRuleForm) -> HttpResponse:
        if self.tenant is None:
            raise ValidationError("Choose a tenant first (top bar).")
        rule = services.create_rule(self.request.user, self.tenant, form.rule_data())
        messages.success(self.request, f"Rule {rule.name} created.")
        return HttpResponseRedirect(reverse("alerts:rules"))


class RuleEditView(TenantScopedMixin, RuleFormMixin, ObjectFormView):
    model = AlertRule
    required_role = Role.MEMBER

    def rule_tenant(self):
        return self.object.tenant

    def get_initial(self) -> dict[str, Any]:
        rule = self.object
        initial = services.rule_settings(rule)
        initial["channels"] = list(rule.channels.all())
        return initial

    def perform(self, form: AlertRuleForm) -> HttpResponse:
        rule = services.update_rule(self.request.user, self.object, form.rule_data())
        messages.success(self.request, f"Rule {rule.name} saved.")
        return HttpResponseRedirect(reverse("alerts:rules"))


class RuleDeleteView(TenantScopedMixin, ObjectFormView):
    model = AlertRule
    required_role = Role.MEMBER
    template_name = "alerts/confirm.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            title=f"Delete the rule {self.object.name} and its alerts?",
            confirm_label="Delete rule",
            cancel_url=reverse("alerts:rules"),
            **kwargs,
        )

    def perform(self, form: Any) -> HttpResponse:
        services.delete_rule(self.request.user, self.object)
        messages.success(self.request, "Rule deleted.")
        return HttpResponseRedirect(reverse("alerts:rules"))


# --- channels ------------------------------------------------------------------------------------


class ChannelListView(TenantPageMixin, Status400Mixin, ServiceFormMixin, FormView):
    """The tenant's channels and the form to add one (members; viewers read)."""

    form_class = AlertChannelForm
    template_name = "alerts/channels.html"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self.tenant is not None:
            require_role(request.user, self.tenant, Role.MEMBER)
        return super().post(request, *args, **kwargs)

    def get_initial(self) -> dict[str, Any]:
        from apps.alerts.channels import new_secret

        return {"secret": new_secret()}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        channels = AlertChannel.objects.visible_to(self.request.user).filter(tenant=self.tenant)
        context["channels"] = list(channels)
        return context

    def perform(self, form: AlertChannelForm) -> HttpResponse:
        if self.tenant is None:
            raise ValidationError("Choose a tenant first (top bar).")
        channel, _ = services.create_channel(self.request.user, self.tenant, **form.cleaned_data)
        messages.success(self.request, f"Channel {channel.name} created.")
        return HttpResponseRedirect(reverse("alerts:channel", args=[channel.pk]))


class ChannelDetailView(TenantScopedMixin, Status400Mixin, ObjectFormView):
    """A channel's delivery log (the last 100 attempts' outcome) and its edit form."""

    model = AlertChannel
    form_class = ChannelEditForm
    template_name = "alerts/channel_detail.html"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        require_role(request.user, self.object.tenant, Role.MEMBER)
        return super().post(request, *args, **kwargs)

    def get_initial(self) -> dict[str, Any]:
        return {"target": self.object.target}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        deliveries = (
            Delivery.objects.visible_to(self.request.user)
            .filter(channel=self.object)
            .select_related("alert__rule")[:100]
        )
        return super().get_context_data(
            channel=self.object,
            deliveries=list(deliveries),
            can_act=can_act(self.request.user, self.object.tenant),
            **kwargs,
        )

    def perform(self, form: ChannelEditForm) -> HttpResponse:
        services.update_channel(self.request.user, self.object, **form.cleaned_data)
        messages.success(self.request, "Channel saved.")
        return HttpResponseRedirect(reverse("alerts:channel", args=[self.object.pk]))


class ChannelDeleteView(TenantScopedMixin, ObjectFormView):
    model = AlertChannel
    required_role = Role.MEMBER
    template_name = "alerts/confirm.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            title=f"Delete the channel {self.object.name}? Rules stop notifying it.",
            confirm_label="Delete channel",
            cancel_url=reverse("alerts:channels"),
            **kwargs,
        )

    def perform(self, form: Any) -> HttpResponse:
        services.delete_channel(self.request.user, self.object)
        messages.success(self.request, "Channel deleted.")
        return HttpResponseRedirect(reverse("alerts:channels"))
