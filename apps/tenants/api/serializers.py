"""API shapes of tenants, environments, memberships and invitations.

Serializers only describe and type-check; the rules (slugs, roles, who may do what) live
in apps.tenants.services, so the HTML forms and the API give the same answers.
"""

from rest_framework import serializers

from apps.core.api import RejectUnknownFieldsMixin, api_token
from apps.core.roles import Role
from apps.tenants.models import Environment, Invitation, Membership, Tenant

# Slugs are checked by the service layer (model validators and uniqueness), not twice.
SERVICE_VALIDATED = {"validators": []}


class VisibleTenantField(serializers.SlugRelatedField):
    """A tenant named by slug in the body, looked up through `visible_to`.

    A tenant the caller may not act in is answered like one that does not exist, so the
    error never tells whether a foreign slug is taken.
    """

    default_error_messages = {
        "does_not_exist": "No such tenant.",
        "invalid": "Give the tenant's slug.",
    }

    def __init__(self, *, min_role: str = Role.VIEWER, **kwargs) -> None:
        self.min_role = min_role
        kwargs.setdefault("slug_field", "slug")
        kwargs.setdefault("queryset", Tenant.objects.all())
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context["request"]
        return Tenant.objects.visible_to(request.user, self.min_role, token=api_token(request))


class TenantSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    role = serializers.ChoiceField(
        choices=Role.choices,
        read_only=True,
        allow_null=True,
        help_text="Your role in this tenant (null for a platform admin who is not a member).",
    )

    class Meta:
        model = Tenant
        fields = ["slug", "name", "description", "role", "created_at"]
        read_only_fields = ["role", "created_at"]
        extra_kwargs = {"slug": SERVICE_VALIDATED, "name": {"required": False}}


class TenantUpdateSerializer(TenantSerializer):
    """The slug names the tenant everywhere (URLs, images), so it never changes."""

    class Meta(TenantSerializer.Meta):
        read_only_fields = ["slug", "role", "created_at"]


class EnvironmentSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Environment
        fields = ["id", "tenant", "slug", "name", "description", "created_at"]
        read_only_fields = ["id", "tenant", "slug", "created_at"]
        extra_kwargs = {"name": {"required": False}}


class EnvironmentCreateSerializer(EnvironmentSerializer):
    tenant = VisibleTenantField(min_role=Role.ADMIN, help_text="Slug of a tenant you administer.")

    class Meta(EnvironmentSerializer.Meta):
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"slug": SERVICE_VALIDATED, "name": {"required": False}}
        validators: list = []  # (tenant, slug) uniqueness: the service answers on `slug`


class MembershipSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "tenant", "user", "email", "role", "created_at"]
        read_only_fields = ["id", "tenant", "user", "email", "created_at"]


class MembershipRoleSerializer(MembershipSerializer):
    """PATCH body of a membership: only the role changes."""

    class Meta(MembershipSerializer.Meta):
        extra_kwargs = {"role": {"required": True}}


class InvitationSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    tenant = VisibleTenantField(min_role=Role.ADMIN, help_text="Slug of a tenant you administer.")
    invited_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    status = serializers.CharField(read_only=True, help_text="pending, accepted, revoked, expired")

    class Meta:
        model = Invitation
        fields = [
            "id",
            "tenant",
            "email",
            "role",
            "status",
            "invited_by",
            "created_at",
            "expires_at",
            "accepted_at",
            "revoked_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "invited_by",
            "created_at",
            "expires_at",
            "accepted_at",
            "revoked_at",
        ]


class InvitationCreatedSerializer(InvitationSerializer):
    """The answer to a new invitation: the only time the link's secret is shown."""

    token = serializers.CharField(read_only=True, help_text="Shown once; only its hash is kept.")
    accept_url = serializers.CharField(read_only=True)

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "token", "accept_url"]


class InvitationAcceptSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    token = serializers.CharField(max_length=100, trim_whitespace=True)


class QuotaSerializer(serializers.Serializer):
    """PATCH body of a tenant's quota (platform admins; 0: unlimited, keys left out stay)."""

    stacks = serializers.IntegerField(required=False, min_value=0)
    containers = serializers.IntegerField(required=False, min_value=0)
    memory = serializers.IntegerField(required=False, min_value=0, help_text="bytes")
    cpus = serializers.DecimalField(required=False, max_digits=7, decimal_places=2)
    pids = serializers.IntegerField(required=False, min_value=0, help_text="per container")
    registry_storage = serializers.IntegerField(required=False, min_value=0, help_text="bytes")


class QuotaLineSerializer(serializers.Serializer):
    label = serializers.CharField()
    used = serializers.FloatField(help_text="per-container quotas: the highest asked")
    limit = serializers.FloatField(help_text="0: unlimited")
    unit = serializers.ChoiceField(choices=["count", "bytes", "cpus"])
    per_container = serializers.BooleanField()


class QuotaUsageSerializer(serializers.Serializer):
    """Each quota of the tenant, by key, with what it uses."""

    stacks = QuotaLineSerializer()
    containers = QuotaLineSerializer()
    memory = QuotaLineSerializer()
    cpus = QuotaLineSerializer()
    pids = QuotaLineSerializer()
    registry_storage = QuotaLineSerializer()
