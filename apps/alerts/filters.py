"""The filtersets of the alerts lists, shared by the portal's page and the API: they
narrow a queryset already limited by `visible_to`; a foreign id finds nothing."""

from __future__ import annotations

import django_filters

from apps.alerts.models import Alert, AlertRule, Delivery
from apps.core.filters import IdFilter


class AlertFilterSet(django_filters.FilterSet):
    """`?state=pending|firing|resolved`, `?rule=<id>`, `?tenant=<slug>`."""

    state = django_filters.ChoiceFilter(choices=Alert.State.choices, help_text="Only this state.")
    rule = IdFilter(field_name="rule_id", help_text="Only alerts of this rule (id).")
    tenant = django_filters.CharFilter(field_name="tenant__slug", help_text="Only this tenant.")

    class Meta:
        model = Alert
        fields: list[str] = []


class AlertRuleFilterSet(django_filters.FilterSet):
    """`?tenant=<slug>`, `?environment=<id>`, `?kind=`."""

    tenant = django_filters.CharFilter(field_name="tenant__slug", help_text="Only this tenant.")
    environment = IdFilter(field_name="environment_id", help_text="Only rules of it (id).")
    kind = django_filters.ChoiceFilter(choices=AlertRule.Kind.choices, help_text="Only this kind.")

    class Meta:
        model = AlertRule
        fields: list[str] = []


class DeliveryFilterSet(django_filters.FilterSet):
    """`?state=pending|sent|failed`, `?alert=<id>`."""

    state = django_filters.ChoiceFilter(choices=Delivery.State.choices, help_text="This state.")
    alert = IdFilter(field_name="alert_id", help_text="Only deliveries of this alert (id).")

    class Meta:
        model = Delivery
        fields: list[str] = []
