"""The registry over the API: /api/v1/registry/repositories/, robots/ and usage/.

Objects come through `visible_to` (a foreign one is 404; public repositories can be
read, listed with `?public=true`, but not changed); each change is one call to
apps.registry.services, which checks the role (too low is 403).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import TenantScopedViewSet, query_flag
from apps.registry import browse, services, usage
from apps.registry.api import serializers as s
from apps.registry.client import RegistryError
from apps.registry.models import Repository, RobotAccount
from apps.tenants.models import Tenant

PUBLIC_PARAMETER = OpenApiParameter(
    "public",
    bool,
    description="true: the public repositories of every tenant (the platform's `library` "
    "included) instead of the caller's own",
)
READ_ONLY_ACTIONS = ("retrieve", "tags")


@extend_schema_view(list=extend_schema(parameters=[PUBLIC_PARAMETER]))
class RepositoryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Repositories of the caller's tenants, and public ones to read; tags, visibility
    and tag deletion (own tenants only)."""

    model = Repository
    serializer_class = s.RepositorySerializer

    def get_queryset(self):
        if self.action in READ_ONLY_ACTIONS or self._public_requested():
            queryset = Repository.objects.browsable_by(self.request.user, token=self.token)
        else:
            queryset = super().get_queryset()
        if self._public_requested():
            queryset = queryset.filter(visibility=Repository.Visibility.PUBLIC)
        queryset = queryset.select_related("tenant")
        tenant = self.request.query_params.get("tenant")
        return queryset.filter(tenant__slug=tenant) if tenant else queryset

    def _public_requested(self) -> bool:
        return self.action == "list" and query_flag(self.request, "public")

    def get_serializer_class(self):
        return {
            "partial_update": s.VisibilitySerializer,
            "delete_tag": s.DeleteTagSerializer,
            "tags": s.TagSerializer,
        }.get(self.action, s.RepositorySerializer)

    def _writable(self) -> Repository:
        return self.get_object()

    @extend_schema(responses={200: s.RepositorySerializer})
    def partial_update(self, request, *args, **kwargs):
        repository = self._writable()  # a foreign object is 404 before the body is read
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        repository = services.set_visibility(
            actor=request.user,
            repository=repository,
            visibility=serializer.validated_data["visibility"],
        )
        return Response(s.RepositorySerializer(repository).data)

    @extend_schema(responses={200: s.TagSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def tags(self, request, pk=None):
        repository = self.get_object()
        try:
            tags = browse.repository_tags(repository)
        except RegistryError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response([tag.as_dict() for tag in tags])

    @action(detail=True, methods=["post"], url_path="delete-tag")
    def delete_tag(self, request, pk=None):
        repository = self._writable()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        digest = services.delete_tag(
            actor=request.user, repository=repository, tag=serializer.validated_data["tag"]
        )
        return Response({"deleted": digest})

    @extend_schema(responses={204: None})
    def destroy(self, request, *args, **kwargs):
        """Delete an empty repository (no tag left; one with tags is a 400 naming them)."""
        services.delete_repository(actor=request.user, repository=self._writable())
        return Response(status=status.HTTP_204_NO_CONTENT)


class RobotViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Robot accounts (CI credentials); the secret is in the create answer only."""

    model = RobotAccount
    serializer_class = s.RobotSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("tenant")

    def get_serializer_class(self):
        return {"create": s.RobotCreateSerializer}.get(self.action, s.RobotSerializer)

    @extend_schema(responses={201: s.RobotCreatedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        tenant = data.pop("tenant", None) or (self.token.tenant if self.token else None)
        if tenant is None:
            raise ValidationError({"tenant": "Name the tenant (its slug)."})
        robot, secret = services.create_robot(actor=request.user, tenant=tenant, **data)
        robot.secret = secret
        return Response(s.RobotCreatedSerializer(robot).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.RobotSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        robot = services.revoke_robot(actor=request.user, robot=self.get_object())
        return Response(s.RobotSerializer(robot).data)

    def destroy(self, request, *args, **kwargs):
        services.revoke_robot(actor=request.user, robot=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class UsageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Registry usage per tenant (pulls/pushes per day, hottest, storage, transfer)."""

    model = Tenant
    lookup_field = "slug"
    serializer_class = s.UsageUpdateSerializer

    def list(self, request, *args, **kwargs):
        tenants = self.get_queryset().order_by("slug")
        return Response([usage.summary(tenant) for tenant in tenants])

    def retrieve(self, request, *args, **kwargs):
        return Response(usage.summary(self.get_object()))

    @extend_schema(request=s.UsageUpdateSerializer)
    def partial_update(self, request, *args, **kwargs):
        tenant = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "quota_bytes" in data:
            services.set_quota(actor=request.user, tenant=tenant, quota_bytes=data["quota_bytes"])
        if "pull_alert_threshold" in data:
            services.set_pull_alert_threshold(
                actor=request.user, tenant=tenant, threshold=data["pull_alert_threshold"]
            )
        return Response(usage.summary(tenant))
