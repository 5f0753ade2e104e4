"""API shapes of events, and the query parameters that filter them."""

from rest_framework import serializers

from apps.activity.models import Event
from apps.core.api import RejectUnknownFieldsMixin


class EventSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    actor = serializers.CharField(source="actor_name", read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "tenant",
            "actor",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "outcome",
            "message",
            "data",
            "created_at",
        ]
        read_only_fields = fields


class EventFilterSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Query parameters of the event list; a bad date answers 400 naming the parameter."""

    tenant = serializers.CharField(required=False, help_text="Tenant slug.")
    action = serializers.CharField(required=False, help_text="For example tenant.create.")
    outcome = serializers.ChoiceField(choices=Event.Outcome.choices, required=False)
    actor = serializers.CharField(required=False, help_text="Username of who acted.")
    object_type = serializers.CharField(required=False, help_text="For example environment.")
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; events at or after.")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; events before.")

    LOOKUPS = {
        "tenant": "tenant__slug",
        "action": "action",
        "outcome": "outcome",
        "actor": "actor_name",
        "object_type": "object_type",
        "since": "created_at__gte",
        "until": "created_at__lt",
    }

    def filter(self, queryset):
        """Apply the validated parameters to `queryset` (already limited by visible_to)."""
        return queryset.filter(**{self.LOOKUPS[k]: v for k, v in self.validated_data.items()})
