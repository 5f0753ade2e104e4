"""API shapes of stacks, services, containers and revisions.

Serializers type-check and look up what the body names (environment, template) through
`visible_to`; the rules (names, answers, compose policy, roles) live in
apps.deployments.services, so the pages and the API answer the same way. Secret answers
and the secrets they put into a spec are masked: viewers read these too.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog.questions import secret_names, secret_values
from apps.core.api import RejectUnknownFieldsMixin, VisibleRelatedField
from apps.core.roles import Role
from apps.deployments import exceptions as policy_exceptions
from apps.deployments import revisions, services
from apps.deployments.health import recent
from apps.deployments.models import Container, Revision, Service, Stack
from apps.deployments.swarm_tasks import container_problem
from apps.tenants.models import Environment


def masked_answers(version, answers: dict | None) -> dict:
    names = secret_names(version, answers)
    return {
        key: revisions.MASK if revisions.is_secret_name(key, names) and value else value
        for key, value in (answers or {}).items()
    }


class VisibleEnvironmentField(VisibleRelatedField):
    """An environment id, found among those the caller may deploy to; others do not exist."""

    model, noun, role = Environment, "environment", Role.MEMBER


class ContainerSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    node = serializers.SlugRelatedField(
        slug_field="hostname",
        read_only=True,
        help_text="A Swarm task: the hostname of the node it runs on (null on a single "
        "engine, or before the cluster's heartbeat recorded the node).",
    )
    node_engine = serializers.SerializerMethodField(
        help_text="A Swarm task: whether Berth reaches its node's engine (the manager's, or "
        "one a platform admin set for the node), which the shell, live stats and the inspect "
        "view need (logs do not: the manager serves them). Null on a single engine."
    )

    class Meta:
        model = Container
        fields = [
            "id",
            "name",
            "service",
            "host",
            "replica",
            "revision",
            "image",
            "state",
            "health",
            "health_reason",
            "restart_count",
            "exit_code",
            "ports",
            "node",
            "node_engine",
            "started_at",
            "last_seen_at",
        ]
        read_only_fields = fields

    #: The container's own columns among `fields` (the stack detail reads only these).
    READ_COLUMNS = [f for f in Meta.fields if f not in ("service", "host", "node", "node_engine")]

    def get_node_engine(self, container: Container) -> bool | None:
        if not container.host.is_swarm:
            return None
        return not container_problem(container, "shell")


class ServiceSerializer(serializers.ModelSerializer):
    stack = serializers.PrimaryKeyRelatedField(read_only=True)
    replacements = serializers.SerializerMethodField(
        help_text="Unhealthy containers Berth replaced in the last hour"
    )
    last_replaced_at = serializers.SerializerMethodField()

    class Meta:
        model = Service
        fields = [
            "id",
            "stack",
            "name",
            "image",
            "scale",
            "health",
            "health_reason",
            "flapping",
            "replacements",
            "last_replaced_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_replacements(self, service: Service) -> int:
        return len(recent(service.replacements, timezone.now()))

    def get_last_replaced_at(self, service: Service) -> str | None:
        kept = recent(service.replacements, timezone.now())
        return kept[-1] if kept else None


class StackSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.PrimaryKeyRelatedField(read_only=True)
    environment_slug = serializers.CharField(source="environment.slug", read_only=True)
    template = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()
    revision = serializers.SerializerMethodField()
    answers = serializers.SerializerMethodField()
    services = ServiceSerializer(many=True, read_only=True)

    class Meta:
        model = Stack
        fields = [
            "id",
            "name",
            "tenant",
            "environment",
            "environment_slug",
            "template",
            "version",
            "revision",
            "answers",
            "desired_state",
            "state",
            "state_reason",
            "operation",
            "operation_started_at",
            "operation_deadline",
            "cancel_requested",
            "remove_volumes",
            "services",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_template(self, stack: Stack) -> str | None:
        version = stack.template_version
        return version.template.slug if version else None

    def get_version(self, stack: Stack) -> str | None:
        return stack.template_version.version if stack.template_version else None

    def get_revision(self, stack: Stack) -> int | None:
        return stack.current_revision.number if stack.current_revision else None

    def get_answers(self, stack: Stack) -> dict:
        return masked_answers(stack.template_version, stack.answers)


class StackDetailSerializer(StackSerializer):
    containers = ContainerSerializer(many=True, read_only=True)
    compose = serializers.CharField(read_only=True)
    policy_exceptions = serializers.SerializerMethodField(
        help_text="Exceptions to the compose policy the current revision uses: rule, kind "
        "and name (where), what, granted_by (platform admin or environment)."
    )

    class Meta(StackSerializer.Meta):
        fields = [*StackSerializer.Meta.fields, "containers", "compose", "policy_exceptions"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_policy_exceptions(self, stack: Stack) -> list:
        revision = stack.current_revision
        return policy_exceptions.of_spec(revision.spec if revision else None)


class ConfirmExceptionsMixin(serializers.Serializer):
    """A platform admin's confirmation of policy exceptions only their role grants."""

    confirm_exceptions = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Platform admins: deploy although the file needs exceptions to the compose "
        "policy that only your role grants (without it the 400 lists them).",
    )


class StackCreateSerializer(
    RejectUnknownFieldsMixin, ConfirmExceptionsMixin, serializers.Serializer
):
    name = serializers.CharField(max_length=63)
    environment = VisibleEnvironmentField(help_text="Id of an environment you may deploy to.")
    template = serializers.CharField(
        required=False, help_text="Slug of a catalog template (yours or the platform's)."
    )
    version = serializers.CharField(required=False, help_text="Default: the newest version.")
    answers = serializers.DictField(required=False, default=dict)
    compose = serializers.CharField(required=False, trim_whitespace=False)


class UpgradeSerializer(RejectUnknownFieldsMixin, ConfirmExceptionsMixin, serializers.Serializer):
    version = serializers.CharField()
    answers = serializers.DictField(required=False, default=dict)


class RedeploySerializer(RejectUnknownFieldsMixin, ConfirmExceptionsMixin, serializers.Serializer):
    answers = serializers.DictField(
        required=False,
        help_text="Changed answers; those left out keep their value (a compose stack: null "
        "removes a variable).",
    )
    compose = serializers.CharField(
        required=False,
        trim_whitespace=False,
        help_text="A compose stack's new compose file (a template stack refuses it).",
    )
    strategy = serializers.ChoiceField(
        choices=["rolling", "canary"],
        required=False,
        help_text="Roll this change out as a canary (services with a route), whatever "
        "berth.yml says.",
    )
    dry_run = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Only say what would change (200 with the summary); nothing is written.",
    )


class RedeployPreviewSerializer(serializers.Serializer):
    """What a redeploy would change (dry_run): secrets masked, nothing written."""

    dry_run = serializers.BooleanField()
    changed = serializers.BooleanField(help_text="False: the stack already runs this.")
    summary = serializers.CharField(help_text="The summary the new revision would carry.")
    changes = serializers.ListField(
        child=serializers.DictField(),
        help_text="Structured changes: `kind` (service, image, scale, limits, ports, "
        "variable, config, compose) and its details (service, name, from, to...).",
    )
    lines = serializers.ListField(child=serializers.CharField(), help_text="Each change in words.")
    diff = serializers.ListField(
        child=serializers.CharField(), help_text="Unified diff of the spec, secrets masked."
    )


class RollbackSerializer(RejectUnknownFieldsMixin, ConfirmExceptionsMixin, serializers.Serializer):
    revision = serializers.IntegerField(min_value=1, help_text="The revision number.")


class ScaleSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    replicas = serializers.IntegerField(help_text=f"0 to {services.MAX_REPLICAS}.")


class SaveAsTemplateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Publish the stack as a template of its tenant; unset metadata comes from the stack."""

    slug = serializers.CharField(max_length=40)
    version = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=80, required=False, allow_blank=True)
    visibility = serializers.ChoiceField(
        choices=["tenant", "public"],
        default="tenant",
        help_text="tenant (private) or public (listed once a platform admin approves).",
    )
    category = serializers.CharField(max_length=40, required=False, allow_blank=True)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    icon = serializers.CharField(max_length=16, required=False, allow_blank=True)
    maintainer = serializers.CharField(max_length=120, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    readme = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)

    METADATA = ("slug", "name", "category", "description", "icon", "maintainer", "tags")


class EmptySerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Actions that take no body."""


class RevisionSerializer(serializers.ModelSerializer):
    stack = serializers.PrimaryKeyRelatedField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Revision
        fields = ["id", "stack", "number", "reason", "summary", "created_by", "created_at"]
        read_only_fields = fields


class RevisionDetailSerializer(RevisionSerializer):
    spec = serializers.SerializerMethodField()
    answers = serializers.SerializerMethodField()
    template = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()

    class Meta(RevisionSerializer.Meta):
        fields = [
            *RevisionSerializer.Meta.fields,
            "changes",
            "template",
            "version",
            "answers",
            "spec",
            "compose",
        ]
        read_only_fields = fields

    def get_spec(self, revision: Revision) -> dict:
        version = revision.template_version
        return revisions.masked_spec(
            revision.spec,
            secret_names(version, revision.answers),
            secret_values(version, revision.answers),
        )

    def get_answers(self, revision: Revision) -> dict:
        return masked_answers(revision.template_version, revision.answers)

    def get_template(self, revision: Revision) -> str | None:
        version = revision.template_version
        return version.template.slug if version else None

    def get_version(self, revision: Revision) -> str | None:
        return revision.template_version.version if revision.template_version else None


class DiffQuerySerializer(serializers.Serializer):
    """The query parameters of a revision's diff (read, as the schema shows them)."""

    against = serializers.IntegerField(
        required=False,
        help_text="Revision id to compare with (default: the previous revision).",
        error_messages={"invalid": "Give a number (an id)."},
    )
