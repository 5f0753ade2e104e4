"""/api/v1/templates/: list (filters q, category, publisher), detail, versions, publish.

Publishing is one call to apps.catalog.services; its ValidationError answers 400 with
the field ("template", "version", "compose", "berth") and the README's message lines.
"""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from apps.catalog import services
from apps.catalog.api import serializers as s
from apps.catalog.filters import TemplateFilterSet
from apps.catalog.models import Template, TemplateVersion
from apps.catalog.views import versions_newest_first
from apps.core.api import TenantScopedViewSet


class TemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Templates you may see: Berth's, your tenants' and approved public ones."""

    model = Template
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    filterset_class = TemplateFilterSet

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return Template.objects.none()
        # `versions` holds only those the caller may see: another tenant's public template
        # lists its approved versions, never one waiting for review.
        visible = TemplateVersion.objects.visible_to(self.request.user, token=self.token)
        return (
            super()
            .get_queryset()
            .select_related("publisher")
            .prefetch_related(Prefetch("versions", queryset=visible))
        )

    def filterset_kwargs(self) -> dict:
        """`publisher=mine` means the token's tenant, else the session's."""
        tenant = self.token.tenant if self.token is not None and self.token.tenant_id else None
        return {"tenant": tenant or getattr(self.request, "tenant", None)}

    def get_serializer_class(self):
        return {
            "retrieve": s.TemplateDetailSerializer,
            "create": s.TemplatePublishSerializer,
            "versions": s.VersionPublishSerializer,
        }.get(self.action, s.TemplateSerializer)

    @extend_schema(request=s.TemplatePublishSerializer, responses={201: s.TemplateDetailSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        metadata = {k: data[k] for k in s.TemplatePublishSerializer.METADATA if k in data}
        published = services.publish_template(
            request.user,
            data["tenant"],
            metadata,
            data["version"],
            data["compose"],
            data.get("berth", ""),
            data.get("readme", ""),
            data["visibility"],
        )
        template = self.get_queryset().get(pk=published.template_id)
        body = s.TemplateDetailSerializer(template, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["get"], responses=s.TemplateVersionSerializer(many=True), filters=False)
    @extend_schema(
        methods=["post"],
        request=s.VersionPublishSerializer,
        responses={201: s.TemplateVersionSerializer},
    )
    @action(detail=True, methods=["get", "post"])
    def versions(self, request, pk=None):
        template = self.get_object()
        if request.method == "GET":
            data = s.TemplateVersionSerializer(
                versions_newest_first(template, request.user, self.token), many=True
            ).data
            return Response(data)
        if not self.writable_queryset().filter(pk=template.pk).exists():
            raise exceptions.PermissionDenied("Only members of the publishing tenant add versions.")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = services.publish_version(
            request.user,
            template,
            data["version"],
            data["compose"],
            data.get("berth", ""),
            data.get("readme", ""),
        )
        return Response(s.TemplateVersionSerializer(version).data, status=status.HTTP_201_CREATED)
