"""An environment's secrets and configs over the API: /api/v1/secrets/.

One endpoint for both kinds (`kind`: secret or config, `?kind=` to list one). Create
with `environment`, `kind`, `name` and `value`; rotate with PATCH (or PUT) of `value`
alone; DELETE removes an entry no stack uses. `value` is write-only: a secret's value
is never returned by any call once saved; a config's value is returned to members and
above as `config_value` (null for a secret, and for viewers). Every change is one call
to apps.deployments.secret_store, which checks the role (a viewer gets 403) and the
input (400 naming `name`, `kind` or `value`: a bad name, a value over 500 KiB).
The environment is looked up among those the caller can see: another tenant's does not
exist (400 on `environment`); another tenant's entry is 404.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers

from apps.core.api import (
    RejectUnknownFieldsMixin,
    TenantScopedViewSet,
    VisibleRelatedField,
)
from apps.deployments import secret_store
from apps.deployments.filters import SecretFilterSet
from apps.deployments.models import Secret
from apps.tenants.models import Environment


class VisibleEnvironmentField(VisibleRelatedField):
    """An environment id, found among those the caller can see; others do not exist."""

    model, noun = Environment, "environment"


class SecretSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    """A store entry: its name, kind, version and digest; never a secret's value."""

    environment = VisibleEnvironmentField()
    value = serializers.CharField(
        write_only=True,
        trim_whitespace=False,
        help_text="The value (UTF-8 text, at most 500 KiB). Write-only: sent on create, "
        "and alone on PATCH to rotate.",
    )
    config_value = serializers.SerializerMethodField(
        help_text="A config's value, for members and above; null for a secret or a viewer."
    )

    class Meta:
        model = Secret
        fields = [
            "id",
            "environment",
            "kind",
            "name",
            "value",
            "config_value",
            "version",
            "digest",
            "size",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "version", "digest", "size", "created_at", "updated_at"]
        # The name and value rules are the store's, so the page and the API say the same.
        validators: list = []
        extra_kwargs = {
            "name": {"validators": []},
            "kind": {"required": True},
            "digest": {"help_text": "A keyed digest of the value: changes when it does."},
            "version": {"help_text": "1 at creation, one more at each rotation."},
        }

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            for name in ("environment", "kind", "name"):  # an entry is renamed by no one
                fields[name].read_only = True
        return fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_config_value(self, entry: Secret) -> str | None:
        return secret_store.config_value(self.context["request"].user, entry)


class SecretViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Secrets and configs of the environments you belong to: one endpoint for both
    kinds (`kind`: secret or config; `?kind=` lists one). Create with `environment`,
    `kind`, `name` and `value`; PATCH `value` alone to rotate (the version goes up and
    the stacks using the entry are redeployed with it); DELETE an entry no stack uses.
    Members and above change them; viewers read names, versions and digests. `value` is
    write-only: a secret's value is never returned; a config's is, to members, as
    `config_value`. Compose files name entries in their top-level `secrets:` and
    `configs:` (`external: true`)."""

    model = Secret
    serializer_class = SecretSerializer
    filterset_class = SecretFilterSet

    def get_queryset(self):
        return super().get_queryset().select_related("environment", "tenant")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = secret_store.create_entry(
            self.request.user,
            data["environment"],
            kind=data["kind"],
            name=data["name"],
            value=data["value"],
        )

    def perform_update(self, serializer):
        if "value" not in serializer.validated_data:
            raise serializers.ValidationError({"value": ["Send the new value to rotate."]})
        serializer.instance = secret_store.rotate_entry(
            self.request.user, serializer.instance, value=serializer.validated_data["value"]
        )

    def perform_destroy(self, instance):
        secret_store.delete_entry(self.request.user, instance)
