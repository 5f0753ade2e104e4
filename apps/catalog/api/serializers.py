"""API shapes of templates and their versions, and the publish request."""

from __future__ import annotations

from rest_framework import serializers

from apps.catalog.models import Template, TemplateVersion
from apps.catalog.validation import CATEGORIES
from apps.core.api import RejectUnknownFieldsMixin, api_token
from apps.core.roles import Role
from apps.tenants.api.serializers import VisibleTenantField


class TemplateVersionSerializer(serializers.ModelSerializer):
    review = serializers.CharField(
        read_only=True,
        help_text="approved: other tenants see it; pending: waiting for an admin; "
        "rejected: turned down; none: the template is not public",
    )

    class Meta:
        model = TemplateVersion
        fields = [
            "id",
            "version",
            "questions",
            "config",
            "compose",
            "content_hash",
            "review",
            "published_at",
        ]
        read_only_fields = fields


class TemplateSerializer(serializers.ModelSerializer):
    publisher = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    publisher_name = serializers.CharField(read_only=True)
    versions = serializers.SerializerMethodField()

    class Meta:
        model = Template
        fields = [
            "id",
            "slug",
            "name",
            "category",
            "description",
            "icon",
            "maintainer",
            "homepage",
            "tags",
            "publisher",
            "publisher_name",
            "visibility",
            "approval",
            "versions",
            "updated_at",
        ]
        read_only_fields = fields

    def get_versions(self, template: Template) -> list[str]:
        return [v.version for v in template.versions.all()]


class TemplateDetailSerializer(TemplateSerializer):
    versions = TemplateVersionSerializer(many=True, read_only=True)
    pending_metadata = serializers.SerializerMethodField(
        help_text="Metadata waiting for an admin's review (shown to the publisher only)."
    )

    class Meta(TemplateSerializer.Meta):
        fields = [*TemplateSerializer.Meta.fields, "readme", "pending_metadata"]
        read_only_fields = fields

    def get_pending_metadata(self, template: Template) -> dict:
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if request is None or not template.pending_metadata:
            return {}
        mine = Template.objects.visible_to(user, Role.MEMBER, token=api_token(request))
        return template.pending_metadata if mine.filter(pk=template.pk).exists() else {}


class VersionPublishSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """A new version: compose text (or an uploaded file), berth.yml text, readme."""

    version = serializers.CharField(max_length=40)
    compose = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    compose_file = serializers.FileField(required=False, write_only=True)
    berth = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    readme = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)

    def validate(self, data: dict) -> dict:
        upload = data.pop("compose_file", None)
        if upload is not None:
            data["compose"] = upload.read(256 * 1024 + 1).decode("utf-8", errors="replace")
        if not data.get("compose"):
            raise serializers.ValidationError({"compose": "Send the compose file's text."})
        return data


class TemplatePublishSerializer(VersionPublishSerializer):
    """A template's first publication (or a new version by slug), for one of your tenants."""

    tenant = VisibleTenantField(min_role=Role.MEMBER, help_text="Slug of a tenant you belong to.")
    slug = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=80)
    category = serializers.ChoiceField(choices=list(CATEGORIES))
    description = serializers.CharField(max_length=300)
    icon = serializers.CharField(required=False, allow_blank=True, max_length=16)
    maintainer = serializers.CharField(max_length=120)
    homepage = serializers.CharField(required=False, allow_blank=True, max_length=300)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    visibility = serializers.ChoiceField(
        choices=Template.Visibility.choices, default=Template.Visibility.TENANT
    )

    METADATA = ("slug", "name", "category", "description", "icon", "maintainer", "homepage", "tags")
