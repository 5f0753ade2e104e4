"""Docker engines over the API, for platform admins only (others get 404, not a hint).

Every change is one call to apps.hosts.services, which validates and records the Event.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, permissions, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import TenantScopedViewSet, TokenScopePermission, api_token
from apps.core.tenancy import is_platform_admin
from apps.hosts import services
from apps.hosts.api.serializers import (
    HostSerializer,
    HostUpdateSerializer,
    NodeAvailabilitySerializer,
    NodeEngineSerializer,
    SwarmNodeSerializer,
)
from apps.hosts.engine import EngineError
from apps.hosts.models import Host


class PlatformAdminOr404(permissions.BasePermission):
    """Hosts are platform infrastructure: anyone else is told there is nothing here."""

    def has_permission(self, request, view) -> bool:
        if not is_platform_admin(request.user, api_token(request)):
            raise exceptions.NotFound()
        return True


class HostViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Docker engines Berth drives; `heartbeat` asks one for its state right now."""

    model = Host
    serializer_class = HostSerializer
    permission_classes = [permissions.IsAuthenticated, PlatformAdminOr404, TokenScopePermission]

    def get_serializer_class(self):
        if self.action == "partial_update":
            return HostUpdateSerializer
        return HostSerializer

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        host = services.register_host(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(host).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        host = self.get_object()
        serializer = self.get_serializer(host, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        host = services.update_host(actor=request.user, host=host, **serializer.validated_data)
        return Response(HostSerializer(host).data)

    def destroy(self, request, *args, **kwargs):
        services.remove_host(actor=request.user, host=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def heartbeat(self, request, pk=None):
        """Ask the engine for its state now (an unreachable one is recorded, not an error)."""
        host = services.heartbeat(self.get_object().pk)
        if host is None:  # removed while the engine was being asked
            raise exceptions.NotFound()
        return Response(self.get_serializer(host).data)

    @extend_schema(request=None, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def drain(self, request, pk=None):
        """Place no new work on this host."""
        host = services.set_draining(actor=request.user, host=self.get_object(), draining=True)
        return Response(self.get_serializer(host).data)

    @extend_schema(request=None, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """Take the host back into use after draining."""
        host = services.set_draining(actor=request.user, host=self.get_object(), draining=False)
        return Response(self.get_serializer(host).data)

    def _swarm_host(self) -> Host:
        host = self.get_object()
        if not host.is_swarm:
            raise exceptions.ValidationError(
                {"kind": ["This host is a single engine, not a Swarm cluster: it has no nodes."]}
            )
        return host

    @extend_schema(request=None, responses={200: SwarmNodeSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def nodes(self, request, pk=None):
        """A Swarm cluster's nodes and the tasks on each, as of the last heartbeat."""
        host = self._swarm_host()
        return Response(SwarmNodeSerializer(services.swarm_nodes(host), many=True).data)

    @extend_schema(
        request=NodeAvailabilitySerializer,
        responses={
            200: SwarmNodeSerializer,
            400: OpenApiResponse(description="Bad availability, or no such node"),
            503: OpenApiResponse(description="The manager did not answer"),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"nodes/(?P<node_id>[A-Za-z0-9]+)/availability",
        url_name="node-availability",
    )
    def node_availability(self, request, pk=None, node_id=None):
        """Drain, pause or activate one node (`{"availability": "drain"}`); Swarm moves a
        drained node's tasks to other nodes."""
        host = self._swarm_host()
        serializer = NodeAvailabilitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            node = services.set_node_availability(
                actor=request.user,
                host=host,
                node_id=node_id,
                availability=serializer.validated_data["availability"],
            )
        except EngineError as exc:
            code = (
                status.HTTP_503_SERVICE_UNAVAILABLE if exc.retryable else status.HTTP_409_CONFLICT
            )
            return Response({"detail": f"Swarm did not change the node: {exc.message}"}, code)
        return Response(SwarmNodeSerializer(services.with_task_rows(node)).data)

    @extend_schema(
        request=NodeEngineSerializer,
        responses={
            200: SwarmNodeSerializer,
            400: OpenApiResponse(
                description="Bad endpoint or TLS material, an engine that does not answer "
                "or is not that node, or no such node (the field says which)"
            ),
        },
    )
    @action(
        detail=True,
        methods=["post", "delete"],
        url_path=r"nodes/(?P<node_id>[A-Za-z0-9]+)/engine",
        url_name="node-engine",
    )
    def node_engine(self, request, pk=None, node_id=None):
        """Set one node's own engine endpoint (`{"endpoint": "tcp://10.0.0.7:2376",
        "tls_ca_cert": ..., "tls_client_cert": ..., "tls_client_key": ...}`), so the
        shell, live stats and inspect reach the tasks on it; Berth first checks that the
        engine answers and is that node. DELETE (or `"endpoint": ""`) removes it."""
        host = self._swarm_host()
        fields = {"endpoint": ""}
        if request.method != "DELETE":
            serializer = NodeEngineSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            fields = serializer.validated_data
        node = services.set_node_engine(actor=request.user, host=host, node_id=node_id, **fields)
        return Response(SwarmNodeSerializer(services.with_task_rows(node)).data)
