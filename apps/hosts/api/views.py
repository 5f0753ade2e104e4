"""Docker engines over the API, for platform admins only (others get 404, not a hint).

Every change is one call to apps.hosts.services, which validates and records the Event.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import TenantScopedViewSet, TokenScopePermission, api_token
from apps.core.tenancy import is_platform_admin
from apps.hosts import services
from apps.hosts.api.serializers import HostSerializer, HostUpdateSerializer
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
