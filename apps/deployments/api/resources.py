"""Resources over the API, read-only: GET /api/v1/volumes/, networks/, images/ (the
caller's tenants' objects on every host, `?tenant=<slug>` for one) and
GET /api/v1/containers/{id}/inspect/ (secrets masked, as on the inspect page; 409 for a
Swarm task on a node whose engine Berth cannot reach).

The engine is asked live through apps.deployments.inventory; a host that does not answer
is listed under `unreachable` with the reason, never a 500. A foreign container is 404.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import TenantScopedViewSet
from apps.deployments import inventory
from apps.deployments.models import Container
from apps.tenants.models import Tenant

TENANT = OpenApiParameter("tenant", str, description="Only this tenant's objects (its slug).")


class UnreachableSerializer(serializers.Serializer):
    host = serializers.CharField()
    error = serializers.CharField(help_text="The engine's reason for platform admins.")


class VolumeSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    host = serializers.CharField(source="host.name")
    name = serializers.CharField()
    key = serializers.CharField(help_text="The volume's name in the compose file.")
    stack = serializers.IntegerField(source="stack_id", allow_null=True)
    stack_name = serializers.SerializerMethodField()
    environment = serializers.CharField()
    orphaned = serializers.BooleanField(help_text="Its stack was removed without it.")
    size = serializers.IntegerField(allow_null=True, help_text="Bytes (up to 30 s old).")
    in_use_by = serializers.IntegerField(source="users", allow_null=True)
    created = serializers.DateTimeField(allow_null=True)

    def get_stack_name(self, row) -> str | None:
        return row.stack.name if row.stack else None


class NetworkSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    host = serializers.CharField(source="host.name")
    name = serializers.CharField()
    scope = serializers.CharField(help_text="environment or stack")
    stack = serializers.SerializerMethodField()
    environment = serializers.CharField()
    driver = serializers.CharField()
    internal = serializers.BooleanField()
    created = serializers.DateTimeField(allow_null=True)

    def get_stack(self, row) -> int | None:
        return row.stack.pk if row.stack else None


class ImageSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    host = serializers.CharField(source="host.name")
    id = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    size = serializers.IntegerField()
    created = serializers.DateTimeField(allow_null=True)
    stacks = serializers.SerializerMethodField()
    containers = serializers.IntegerField()

    def get_stacks(self, row) -> list[int]:
        return [s.pk for s in row.stacks]


def _listing(serializer_class: type[serializers.Serializer]):
    return inline_serializer(
        name=f"{serializer_class.__name__.removesuffix('Serializer')}List",
        fields={
            "results": serializer_class(many=True),
            "unreachable": UnreachableSerializer(many=True),
        },
    )


class _ResourceList(TenantScopedViewSet):
    """The caller's tenants (viewer and up; a read-only token is fine)."""

    model = Tenant
    serializer_class = VolumeSerializer
    fetch = staticmethod(inventory.tenant_volumes)

    def tenants(self):
        tenants = self.get_queryset().order_by("slug")
        slug = self.request.query_params.get("tenant")
        if slug is not None:
            tenants = tenants.filter(slug=slug.strip()[:63])
            if not tenants:
                raise exceptions.NotFound("No such tenant.")
        return tenants

    def list(self, request, *args, **kwargs):
        results, unreachable = [], {}
        for tenant in self.tenants():
            for answer in self.fetch(tenant):
                if answer.unreachable:
                    admin = request.user.is_superuser
                    unreachable[answer.host.name] = answer.reason if admin else answer.error
                for row in answer.rows:
                    row.tenant = tenant.slug
                    results.append(row)
        return Response(
            {
                "results": self.get_serializer(results, many=True).data,
                "unreachable": [{"host": h, "error": e} for h, e in unreachable.items()],
            }
        )


@extend_schema(parameters=[TENANT], responses=_listing(VolumeSerializer))
class VolumeViewSet(_ResourceList):
    """The tenants' volumes on every host, with size, age and whether orphaned."""

    serializer_class = VolumeSerializer
    fetch = staticmethod(inventory.tenant_volumes)


@extend_schema(parameters=[TENANT], responses=_listing(NetworkSerializer))
class NetworkViewSet(_ResourceList):
    """The tenants' environment and stack networks on every host."""

    serializer_class = NetworkSerializer
    fetch = staticmethod(inventory.tenant_networks)


@extend_schema(parameters=[TENANT], responses=_listing(ImageSerializer))
class ImageViewSet(_ResourceList):
    """The images the tenants' containers use, host by host."""

    serializer_class = ImageSerializer
    fetch = staticmethod(inventory.tenant_images)


class ContainerViewSet(TenantScopedViewSet):
    """One container as the engine sees it: GET {id}/inspect/ (viewers may read it)."""

    model = Container
    serializer_class = serializers.Serializer

    def get_queryset(self):
        return super().get_queryset().select_related("stack__template_version", "host", "node")

    @extend_schema(
        responses={
            200: inline_serializer(
                name="ContainerInspect",
                fields={
                    "id": serializers.CharField(),
                    "name": serializers.CharField(),
                    "image": serializers.CharField(),
                    "command": serializers.ListField(child=serializers.CharField()),
                    "entrypoint": serializers.ListField(child=serializers.CharField()),
                    "env": serializers.ListField(child=serializers.DictField()),
                    "mounts": serializers.ListField(child=serializers.DictField()),
                    "ports": serializers.ListField(child=serializers.DictField()),
                    "labels": serializers.DictField(child=serializers.CharField()),
                    "state": serializers.DictField(),
                    "health": serializers.DictField(),
                    "events": serializers.ListField(child=serializers.DictField()),
                },
            )
        }
    )
    @action(detail=True, methods=["get"])
    def inspect(self, request, pk=None):
        container = self.get_object()
        found = inventory.inspect_container(container)
        if "error" in found:
            code = status.HTTP_503_SERVICE_UNAVAILABLE
            if found["error"].startswith("gone"):
                code = status.HTTP_404_NOT_FOUND
            elif found["error"].startswith("out of reach"):  # a task on another swarm node
                code = status.HTTP_409_CONFLICT
            return Response({"detail": f"The container is {found['error']}."}, status=code)
        found["events"] = [
            {
                "created_at": e.created_at,
                "action": e.action,
                "outcome": e.outcome,
                "message": e.message,
            }
            for e in inventory.container_events(request.user, container)
        ]
        return Response(found)
