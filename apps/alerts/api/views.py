"""The alerts API: /api/v1/alert-rules/, /alerts/ (with `ack` and `silence`),
/alert-silences/ and /alert-channels/ (with `deliveries`, the delivery log).

Querysets are `visible_to` the caller (another tenant's rows are 404); every change is
one call to apps.alerts.services, which checks the role (members and above; a viewer
gets 403) and the input (400 naming the field).
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.alerts import services
from apps.alerts.api.serializers import (
    AlertChannelSerializer,
    AlertRuleSerializer,
    AlertSerializer,
    DeliverySerializer,
    SilenceActionSerializer,
    SilenceSerializer,
)
from apps.alerts.filters import AlertFilterSet, AlertRuleFilterSet, DeliveryFilterSet
from apps.alerts.models import Alert, AlertChannel, AlertRule, Delivery, Silence
from apps.core.api import TenantScopedViewSet


def tenant_from(data: dict, *parents: str):
    """The tenant named in the body, else the tenant of the first parent object given."""
    if data.get("tenant") is not None:
        return data["tenant"]
    for name in parents:
        if data.get(name) is not None:
            return data[name].tenant
    raise serializers.ValidationError({"tenant": ["Name the tenant (its slug)."]})


class AlertRuleViewSet(viewsets.ModelViewSet, TenantScopedViewSet):
    """Alert rules of your tenants. Create with `tenant` (or `environment`), `name`,
    `kind` and the fields the kind reads: `metric`, `comparison` (gt, ge, lt, le),
    `threshold`, `duration_seconds` for `metric`; `threshold` and `window_seconds` for
    `restarts` and `flapping`; `duration_seconds` for `host_unreachable`; `threshold`
    (percent) for `registry_quota`; `window_seconds` for `hot_image`; `threshold`
    (days) for `certificate`; `threshold` (percent used, 1 to 100) and
    `duration_seconds` for `disk_full`. `channels`: ids of the tenant's channels."""

    model = AlertRule
    serializer_class = AlertRuleSerializer
    filterset_class = AlertRuleFilterSet

    def get_queryset(self):
        firing = Count("alerts", filter=Q(alerts__state=Alert.State.FIRING))
        return (
            super()
            .get_queryset()
            .select_related("tenant")
            .prefetch_related("channels")
            .annotate(firing_count=firing)
        )

    def perform_create(self, serializer):
        data = serializer.validated_data
        tenant = tenant_from(data, "environment", "stack")
        serializer.instance = services.create_rule(self.request.user, tenant, dict(data))

    def perform_update(self, serializer):
        serializer.instance = services.update_rule(
            self.request.user, serializer.instance, dict(serializer.validated_data)
        )

    def perform_destroy(self, instance):
        services.delete_rule(self.request.user, instance)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Alerts of your tenants (`?state=pending|firing|resolved`, `?rule=`): open ones
    and their history. `POST {id}/ack/` acknowledges one; `POST {id}/silence/` with
    `minutes` or `ends_at` (and `match`: alert, rule or subject) silences it."""

    model = Alert
    serializer_class = AlertSerializer
    filterset_class = AlertFilterSet

    def get_queryset(self):
        return super().get_queryset().select_related("tenant", "rule", "acknowledged_by")

    @extend_schema(request=None, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def ack(self, request, pk=None):
        alert = services.acknowledge(request.user, self.get_object())
        return Response(AlertSerializer(alert, context=self.get_serializer_context()).data)

    @extend_schema(request=SilenceActionSerializer, responses={201: SilenceSerializer})
    @action(detail=True, methods=["post"])
    def silence(self, request, pk=None):
        alert = self.get_object()
        body = SilenceActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        ends_at = data.get("ends_at") or timezone.now() + timedelta(minutes=data["minutes"])
        match = data["match"]
        silence = services.create_silence(
            request.user,
            alert.tenant,
            ends_at=ends_at,
            rule=alert.rule if match in ("alert", "rule") else None,
            subject_key=alert.subject_key if match in ("alert", "subject") else "",
            comment=data.get("comment", ""),
        )
        answer = SilenceSerializer(silence, context=self.get_serializer_context()).data
        return Response(answer, status=status.HTTP_201_CREATED)


class SilenceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Silences of your tenants: no notification and no badge for the matching alerts
    (a `rule`, a `subject_key`, or both) until `ends_at`. `DELETE` ends one now."""

    model = Silence
    serializer_class = SilenceSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("tenant", "created_by")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.create_silence(
            self.request.user,
            tenant_from(data, "rule"),
            ends_at=data["ends_at"],
            rule=data.get("rule"),
            subject_key=data.get("subject_key", ""),
            comment=data.get("comment", ""),
        )

    def perform_destroy(self, instance):
        services.expire_silence(self.request.user, instance)


class AlertChannelViewSet(viewsets.ModelViewSet, TenantScopedViewSet):
    """Notification channels of your tenants: `kind` email (`target`: addresses,
    comma-separated) or webhook (`target`: an http(s) URL; the JSON body is signed,
    `X-Berth-Signature: sha256=<hex>` over `<X-Berth-Timestamp>.<body>` with the
    channel's `secret`). `PATCH` changes `target` or rotates `secret`.
    `GET {id}/deliveries/`: the delivery log (`?state=`, `?alert=`)."""

    model = AlertChannel
    serializer_class = AlertChannelSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("tenant")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        channel, secret = services.create_channel(
            request.user,
            tenant_from(data),
            name=data.get("name", ""),
            kind=data.get("kind", ""),
            target=data.get("target", ""),
            secret=data.get("secret", ""),
        )
        answer = dict(self.get_serializer(channel).data)
        if secret:
            answer["secret"] = secret  # shown this once
        return Response(answer, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.update_channel(
            self.request.user,
            serializer.instance,
            target=data.get("target"),
            secret=data.get("secret", ""),
        )

    def perform_destroy(self, instance):
        services.delete_channel(self.request.user, instance)

    @extend_schema(responses=DeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        channel = self.get_object()
        rows = (
            Delivery.objects.visible_to(request.user, token=self.token)
            .filter(channel=channel)
            .select_related("alert__rule")
        )
        rows = DeliveryFilterSet(request.query_params, queryset=rows, request=request)
        if not rows.is_valid():
            raise serializers.ValidationError(rows.errors)
        page = self.paginate_queryset(rows.qs)
        data = DeliverySerializer(page, many=True, context=self.get_serializer_context()).data
        return self.get_paginated_response(data)
