"""API shape of a log line; its query parameters are `apps.logs.filters.LogFilterSet`."""

from rest_framework import serializers

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
