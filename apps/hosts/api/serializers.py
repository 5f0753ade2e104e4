"""API shapes of hosts. TLS material is write-only: it is never sent back."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.api import RejectUnknownFieldsMixin
from apps.hosts.models import Host, SwarmNode

WRITABLE = [
    "name",
    "kind",
    "endpoint",
    "tls_ca_cert",
    "tls_client_cert",
    "tls_client_key",
    "labels",
]


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
    """Changing a host may also turn TLS verification off (for self-signed test engines);
    its kind is fixed once added."""

    class Meta(HostSerializer.Meta):
        read_only_fields = [
            *(f for f in HostSerializer.Meta.read_only_fields if f != "tls_verify"),
            "kind",
        ]


class SwarmTaskSerializer(serializers.Serializer):
    """A task on a node, as recorded by the last heartbeat."""

    task_id = serializers.CharField()
    service = serializers.CharField()
    slot = serializers.IntegerField(allow_null=True)
    state = serializers.CharField()
    desired_state = serializers.CharField()
    container_id = serializers.CharField()
    image = serializers.CharField()
    error = serializers.CharField()
    berth = serializers.SerializerMethodField(
        help_text="The Berth stack row mirroring this task (tenant slug, stack id and name, "
        "container id as in the stack's API), or null for a task Berth did not deploy."
    )

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_berth(self, task: dict) -> dict | None:
        row = task.get("berth")
        if row is None:
            return None
        stack = row.stack
        return {"tenant": stack.tenant.slug, "stack": stack.pk, "stack_name": stack.name,
                "container": row.pk}  # fmt: skip


class SwarmNodeSerializer(serializers.ModelSerializer):
    """A node of a Swarm cluster host, as its manager described it at the last heartbeat;
    `state` is "gone" once the manager no longer lists it."""

    state = serializers.CharField(source="shown_state", read_only=True)
    # Swarm's words, as text: a "role" enum would collide with tenant roles in the schema
    role = serializers.CharField(read_only=True, help_text="manager or worker")
    swarm_state = serializers.CharField(source="state", read_only=True)
    tasks = SwarmTaskSerializer(source="task_rows", many=True, read_only=True)
    is_endpoint = serializers.BooleanField(
        read_only=True,
        help_text="The node whose engine the host's endpoint is: shells and live stats work "
        "for its tasks, and for those of nodes with a checked engine endpoint of their own.",
    )
    engine_endpoint = serializers.CharField(
        read_only=True,
        help_text="The node's own engine endpoint, set by a platform admin (`engine` "
        'action); "" when none.',
    )
    engine_uses_tls = serializers.BooleanField(read_only=True)
    engine_verified_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When that engine last proved to be this node (its Swarm node id): at "
        "the save, then at each heartbeat; null when the last check failed.",
    )
    engine_error = serializers.CharField(
        read_only=True, help_text="Why the last check of the node's engine endpoint failed."
    )
    reaches_engine = serializers.BooleanField(
        read_only=True,
        help_text="Whether the shell, live stats and inspect reach the tasks on this node.",
    )

    class Meta:
        model = SwarmNode
        fields = [
            "node_id",
            "hostname",
            "role",
            "availability",
            "state",
            "swarm_state",
            "manager_status",
            "message",
            "address",
            "labels",
            "engine_version",
            "cpus",
            "memory_bytes",
            "is_endpoint",
            "engine_endpoint",
            "engine_uses_tls",
            "engine_verified_at",
            "engine_error",
            "reaches_engine",
            "tasks",
            "first_seen_at",
            "updated_at",
            "gone_at",
        ]
        read_only_fields = fields


class NodeAvailabilitySerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    availability = serializers.ChoiceField(choices=SwarmNode.Availability.choices)


class NodeEngineSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """A node's own engine endpoint: checked as a host's endpoint is, TLS write-only;
    `endpoint` "" removes it."""

    endpoint = serializers.CharField(
        allow_blank=True,
        max_length=255,
        trim_whitespace=True,
        help_text='unix:///path/to/docker.sock or tcp://host:2376 (with TLS); "" removes it.',
    )
    tls_ca_cert = serializers.CharField(required=False, allow_blank=True, write_only=True)
    tls_client_cert = serializers.CharField(required=False, allow_blank=True, write_only=True)
    tls_client_key = serializers.CharField(
        required=False, allow_blank=True, write_only=True, style={"input_type": "password"}
    )
