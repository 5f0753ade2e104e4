"""API shapes of a log line (its query parameters are `apps.logs.filters.LogFilterSet`)
and of an environment's retention."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.api import RejectUnknownFieldsMixin
from apps.logs import services
from apps.logs.models import LogLine


class LogLineSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = LogLine
        fields = [
            "id",
            "ts",
            "tenant",
            "environment",
            "stack",
            "service",
            "container",
            "stream",
            "text",
        ]
        read_only_fields = fields


class LogPageSerializer(serializers.Serializer):
    """A page: `next` is the URL of the older lines (null on the last page)."""

    next = serializers.CharField(allow_null=True)
    results = LogLineSerializer(many=True)


class LogRetentionSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """An environment's retention (read from `services.with_retention`); only `days` is
    set, 0 being the platform default."""

    id = serializers.IntegerField(read_only=True, help_text="The environment's id.")
    environment = serializers.CharField(source="slug", read_only=True)
    tenant = serializers.CharField(source="tenant.slug", read_only=True)
    days = serializers.IntegerField(
        source="log_days",
        help_text="The environment's own retention in days; 0: the platform default.",
    )
    days_kept = serializers.SerializerMethodField(
        help_text="Days lines are kept, the default applied (0: until deleted by hand)."
    )
    default = serializers.SerializerMethodField(help_text="Whether the platform default applies.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        message = services.days_message(getattr(request, "user", None))
        self.fields["days"].error_messages["invalid"] = message

    def retention(self, environment) -> services.Retention:
        return services.Retention(environment, environment.log_days)

    @extend_schema_field(OpenApiTypes.INT)
    def get_days_kept(self, environment) -> int:
        return self.retention(environment).days_kept

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_default(self, environment) -> bool:
        return self.retention(environment).is_default
