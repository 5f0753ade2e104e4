"""Serializers of the alerts API. They shape input and output; the rules of what is
valid live in apps.alerts.services and apps.alerts.channels (one set of messages for
the portal and the API)."""

from __future__ import annotations

from rest_framework import serializers

from apps.alerts.models import Alert, AlertChannel, AlertRule, Delivery, Silence
from apps.core.api import RejectUnknownFieldsMixin, VisibleRelatedField, api_token
from apps.deployments.models import Stack
from apps.tenants.models import Environment, Tenant


class VisibleTenantField(serializers.SlugRelatedField):
    """A tenant slug among the caller's tenants; another does not exist for them."""

    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "slug")
        kwargs.setdefault("queryset", Tenant.objects.all())
        super().__init__(**kwargs)
        self.error_messages["does_not_exist"] = "No such tenant."

    def get_queryset(self):
        request = self.context["request"]
        return Tenant.objects.visible_to(request.user, token=api_token(request))


class VisibleEnvironmentField(VisibleRelatedField):
    model, noun = Environment, "environment"


class VisibleStackField(VisibleRelatedField):
    model, noun = Stack, "stack"


class VisibleChannelField(VisibleRelatedField):
    model, noun = AlertChannel, "channel"

    def get_queryset(self):
        # Listed as a many field, its choices may be asked for without a request (the
        # schema, the isolation walker): none then.
        if "request" not in self.context:
            return AlertChannel.objects.none()
        return super().get_queryset()


class VisibleRuleField(VisibleRelatedField):
    model, noun = AlertRule, "rule"


class AlertRuleSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    """A rule: scope (tenant, or one environment; a stack and service optionally), what
    it watches, when it fires, and the channels it notifies."""

    tenant = VisibleTenantField(
        required=False, help_text="The tenant's slug (or give an environment)."
    )
    environment = VisibleEnvironmentField(required=False, allow_null=True)
    stack = VisibleStackField(required=False, allow_null=True)
    channels = VisibleChannelField(many=True, required=False)
    firing = serializers.SerializerMethodField(help_text="Open firing alerts of the rule.")

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "tenant",
            "environment",
            "stack",
            "service_name",
            "name",
            "kind",
            "metric",
            "comparison",
            "threshold",
            "duration_seconds",
            "window_seconds",
            "enabled",
            "channels",
            "firing",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        validators: list = []

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["tenant"].read_only = True
        return fields

    def get_firing(self, rule: AlertRule) -> int:
        return getattr(rule, "firing_count", 0)


class AlertSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    kind = serializers.CharField(source="rule.kind", read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "tenant",
            "rule",
            "rule_name",
            "kind",
            "subject",
            "subject_key",
            "state",
            "value",
            "message",
            "started_at",
            "fired_at",
            "resolved_at",
            "evaluated_at",
            "silenced_until",
            "acknowledged_by",
            "acknowledged_at",
        ]
        read_only_fields = fields


class SilenceActionSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Silence an alert: until `ends_at`, or for `minutes`; `match` says what: this
    rule on this subject (`alert`, the default), every subject of the rule (`rule`), or
    this subject under every rule (`subject`)."""

    ends_at = serializers.DateTimeField(required=False)
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=90 * 24 * 60)
    match = serializers.ChoiceField(choices=["alert", "rule", "subject"], default="alert")
    comment = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate(self, attrs):
        if ("ends_at" in attrs) == ("minutes" in attrs):
            raise serializers.ValidationError({"ends_at": ["Give ends_at or minutes."]})
        return attrs


class SilenceSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    tenant = VisibleTenantField(required=False, help_text="The tenant's slug (or give a rule).")
    rule = VisibleRuleField(required=False, allow_null=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Silence
        fields = [
            "id",
            "tenant",
            "rule",
            "subject_key",
            "ends_at",
            "comment",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["id", "created_by", "created_at"]


class AlertChannelSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    """A channel: e-mail addresses (comma-separated) or a webhook URL. `secret` is
    write-only: give one (16 to 200 characters) or get a generated one in the answer to
    the create, the only time it is shown."""

    tenant = VisibleTenantField(required=False, help_text="The tenant's slug.")
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="The webhook's HMAC-SHA256 key (write-only).",
    )

    class Meta:
        model = AlertChannel
        fields = ["id", "tenant", "name", "kind", "target", "secret", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators: list = []

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            for name in ("tenant", "name", "kind"):
                fields[name].read_only = True
        return fields


class DeliverySerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="alert.rule.name", read_only=True)
    subject = serializers.CharField(source="alert.subject", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "alert",
            "rule_name",
            "subject",
            "event",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status",
            "last_error",
            "sent_at",
            "created_at",
        ]
        read_only_fields = fields
