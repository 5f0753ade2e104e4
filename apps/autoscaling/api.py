"""The API of autoscaling: `/api/v1/autoscaling/` lists the visible services'
settings; `/api/v1/autoscaling/{service id}/` reads (GET) and sets (PUT or PATCH, the
fields given; the first one creates) one service's; `decisions/` lists its events."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.activity.api.serializers import EventSerializer
from apps.autoscaling import services
from apps.autoscaling.models import Autoscaler
from apps.core.api import RejectUnknownFieldsMixin, TenantScopedViewSet
from apps.deployments.models import Service


class AutoscalerSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    """A service's autoscaling settings, and the autoscaler's latest judgement."""

    service = serializers.IntegerField(source="service_id", read_only=True)
    target = serializers.FloatField(required=False)

    class Meta:
        model = Autoscaler
        fields = [
            "service",
            *services.FIELDS,
            "last_scaled_at",
            "last_evaluated_at",
            "last_decision",
            "last_figures",
            "last_refusal",
        ]
        read_only_fields = [
            "last_scaled_at",
            "last_evaluated_at",
            "last_decision",
            "last_figures",
            "last_refusal",
        ]
        extra_kwargs = {name: {"required": False} for name in services.FIELDS}


class AutoscalerViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """Per-service autoscaling, addressed by the service's id. Setting it needs the
    member role; a service you cannot see is 404."""

    model = Autoscaler
    serializer_class = AutoscalerSerializer
    lookup_field = "service_id"
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return super().get_queryset().order_by("service_id")

    def service(self) -> Service:
        found = Service.objects.visible_to(self.request.user, token=self.token).filter(
            pk=self.kwargs["service_id"]
        )
        service = found.select_related("stack__tenant", "stack__current_revision").first()
        if service is None:
            raise Http404("No such service.")
        return service

    def retrieve(self, request, service_id=None):
        scaler = self.get_queryset().filter(service_id=self.service().pk).first()
        if scaler is None:
            raise Http404("Autoscaling was never set for this service.")
        return Response(self.get_serializer(scaler).data)

    def update(self, request, service_id=None):
        target = self.service()
        serializer = self.get_serializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        scaler = services.configure(request.user, target, serializer.validated_data)
        return Response(self.get_serializer(scaler).data)

    partial_update = update

    @extend_schema(responses=EventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def decisions(self, request, service_id=None):
        """The service's autoscaling events, newest first (at most 50)."""
        events = services.decisions(self.service(), limit=50)
        return Response(EventSerializer(events, many=True).data)
