"""Routes and service discovery over the API: /api/v1/routes/ and
/api/v1/services/{id}/endpoints/.

Every change is one call to apps.deployments.routes, which checks the role (a viewer
gets 403), the host name claim and the input rules, so the stack page and the API answer
alike. A route's service is looked up among the services the caller can see: another
tenant's service does not exist (400 on `service`); another tenant's route is 404.
Routes from a template's berth.yml are listed like the others but change only with the
stack's answers (400 with a message on update and delete).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import (
    RejectUnknownFieldsMixin,
    TenantScopedViewSet,
    VisibleRelatedField,
)
from apps.deployments import routes
from apps.deployments.containers import environment_alias
from apps.deployments.filters import RouteFilterSet
from apps.deployments.models import Container, Route, Service


class VisibleServiceField(VisibleRelatedField):
    """A service id, found among the services the caller can see; others do not exist."""

    model, noun = Service, "service"


class RouteSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    """A route; `url` is where a browser reaches it through the frontier."""

    service = VisibleServiceField()
    service_name = serializers.CharField(source="service.name", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Route
        fields = [
            "id",
            "stack",
            "service",
            "service_name",
            "hostname",
            "path",
            "port",
            "origin",
            "balance",
            "sticky",
            "tls",
            "redirect_https",
            "url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "stack", "origin", "created_at", "updated_at"]
        # The rules (host name, path, claims, uniqueness) are the service layer's, so the
        # API and the stack page give the same messages.
        validators: list = []
        extra_kwargs = {
            "hostname": {"validators": []},
            "path": {"required": False, "validators": []},
        }

    def get_url(self, route: Route) -> str:
        return routes.route_url(route)


class EndpointSerializer(serializers.Serializer):
    """One healthy container of a service, as other services find it."""

    name = serializers.CharField()
    address = serializers.CharField(help_text="Address on the environment's network.")
    ports = serializers.ListField(child=serializers.DictField())
    revision = serializers.IntegerField()
    health = serializers.CharField(help_text="healthy, or empty without a health check.")
    dns_names = serializers.ListField(
        child=serializers.CharField(),
        help_text="`service` inside its stack, `service.stack` across the environment.",
    )


class RouteViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Routes on the frontier: a host name and path prefix to a port of a service."""

    model = Route
    serializer_class = RouteSerializer
    filterset_class = RouteFilterSet

    def get_queryset(self):
        return super().get_queryset().select_related("service", "stack")

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        service = data.pop("service")
        serializer.instance = routes.create_route(self.request.user, service, **data)

    def perform_update(self, serializer):
        serializer.instance = routes.update_route(
            self.request.user, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        routes.delete_route(self.request.user, instance)


def healthy_endpoints(service: Service) -> list[dict]:
    """The containers of `service` that take traffic now: running, healthy (or without a
    health check), not draining, with an address on the environment network."""
    stack = service.stack
    containers = (
        Container.objects.filter(service=service, state="running", draining=False)
        .filter(health__in=("healthy", ""))
        .exclude(address="")
        .order_by("replica", "name")
    )
    names = [service.name, environment_alias(stack, service.name)]
    return [
        {
            "name": c.name,
            "address": c.address,
            "ports": c.ports,
            "revision": c.revision,
            "health": c.health,
            "dns_names": names,
        }
        for c in containers
    ]


class ServiceEndpointsMixin:
    """`GET /api/v1/services/{id}/endpoints/`: service discovery for the services API."""

    @extend_schema(responses={status.HTTP_200_OK: EndpointSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def endpoints(self, request, pk=None):
        """The service's healthy endpoints (container, address, ports, DNS names)."""
        service = self.get_object()
        return Response(EndpointSerializer(healthy_endpoints(service), many=True).data)
