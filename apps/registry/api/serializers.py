"""API shapes of repositories, robot accounts and usage; rules live in the services."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.api import RejectUnknownFieldsMixin, api_token
from apps.core.roles import Role
from apps.registry.models import MAX_ROBOT_DAYS, Repository, RobotAccount
from apps.tenants.models import Tenant


class RepositorySerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    full_name = serializers.CharField(read_only=True)

    class Meta:
        model = Repository
        fields = [
            "id",
            "tenant",
            "name",
            "full_name",
            "visibility",
            "description",
            "size_bytes",
            "pull_count",
            "push_count",
            "created_at",
        ]
        read_only_fields = fields


class VisibilitySerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    visibility = serializers.ChoiceField(choices=Repository.Visibility.choices)


class DeleteTagSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    tag = serializers.CharField(max_length=128)


class TagSerializer(serializers.Serializer):
    tag = serializers.CharField()
    digest = serializers.CharField()
    size = serializers.IntegerField()
    created = serializers.CharField()
    pushed_at = serializers.DateTimeField(allow_null=True)
    pushed_by = serializers.CharField()


class RobotSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    username = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = RobotAccount
        fields = [
            "id",
            "tenant",
            "name",
            "username",
            "description",
            "scope",
            "repositories",
            "expires_at",
            "created_at",
            "last_used_at",
            "revoked_at",
            "status",
        ]
        read_only_fields = fields


class RobotCreatedSerializer(RobotSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; only a hash is kept.")

    class Meta(RobotSerializer.Meta):
        fields = [*RobotSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class AdminTenantField(serializers.SlugRelatedField):
    """A tenant slug among those where the caller is an admin; others do not exist."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("slug_field", "slug")
        kwargs.setdefault("queryset", Tenant.objects.all())
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context["request"]
        return Tenant.objects.visible_to(request.user, Role.ADMIN, token=api_token(request))


class RobotCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    tenant = AdminTenantField(
        required=False, help_text="Slug of a tenant you administer (default: your token's)."
    )
    name = serializers.CharField(max_length=40)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    scope = serializers.ChoiceField(choices=RobotAccount.Scope.choices, default="pull")
    repositories = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list
    )
    expires_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ROBOT_DAYS
    )


class UsageUpdateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    pull_alert_threshold = serializers.IntegerField(required=False, min_value=0)
    quota_bytes = serializers.IntegerField(
        required=False, min_value=0, help_text="Platform administrators only; 0 = unlimited."
    )
