"""API shapes of personal API tokens; the raw key appears only in the answer to create."""

from rest_framework import serializers

from apps.accounts.models import ApiToken
from apps.accounts.services import MAX_TOKEN_DAYS
from apps.core.api import RejectUnknownFieldsMixin
from apps.tenants.api.serializers import VisibleTenantField


class ApiTokenSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    scope = serializers.ChoiceField(choices=["read", "write"], read_only=True)
    status = serializers.CharField(read_only=True, help_text="active, expired or revoked.")

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "tenant",
            "scope",
            "read_only",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "status",
        ]
        read_only_fields = fields


class ApiTokenCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """What a new token may ask for; its rights never exceed its owner's."""

    name = serializers.CharField(max_length=100)
    tenant = VisibleTenantField(
        required=False,
        allow_null=True,
        help_text="Bind the token to this tenant (slug); a tenant-bound caller's default.",
    )
    read_only = serializers.BooleanField(
        required=False,
        help_text="Only reads (default false). A viewer of the tenant must ask for true.",
    )
    expires_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text=f"Days until the token expires (1 to {MAX_TOKEN_DAYS}); never when omitted.",
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The raw token, shown only once.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields
