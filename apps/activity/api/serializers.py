"""API shape of events; their query parameters are `apps.activity.filters.EventFilterSet`."""

from rest_framework import serializers

from apps.activity.models import Event


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
