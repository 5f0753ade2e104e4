"""API shapes of hosts. TLS material is write-only: it is never sent back."""

from rest_framework import serializers

from apps.core.api import RejectUnknownFieldsMixin
from apps.hosts.models import Host

WRITABLE = ["name", "endpoint", "tls_ca_cert", "tls_client_cert", "tls_client_key", "labels"]


class HostSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    uses_tls = serializers.BooleanField(read_only=True)

    class Meta:
        model = Host
        fields = [
            "id",
            *WRITABLE,
            "tls_verify",
            "uses_tls",
            "state",
            "draining",
            "last_error",
            "engine_version",
            "api_version",
            "operating_system",
            "cpus",
            "memory_bytes",
            "containers_running",
            "containers_total",
            "last_heartbeat_at",
            "last_seen_at",
            "created_at",
        ]
        read_only_fields = [f for f in fields if f not in WRITABLE]
        extra_kwargs = {
            "name": {"validators": []},  # uniqueness and endpoint checks: the service's
            "endpoint": {"validators": []},
            "tls_ca_cert": {"write_only": True},
            "tls_client_cert": {"write_only": True},
            "tls_client_key": {"write_only": True, "style": {"input_type": "password"}},
        }


class HostUpdateSerializer(HostSerializer):
    """Changing a host may also turn TLS verification off (for self-signed test engines)."""

    class Meta(HostSerializer.Meta):
        read_only_fields = [f for f in HostSerializer.Meta.read_only_fields if f != "tls_verify"]
