"""Stacks, services and revisions over the API (/api/v1/stacks/, services/, revisions/).

Each write is one call to apps.deployments.services, which checks the caller's role,
writes the desired state, a Revision and an Event, and queues the reconciler. Objects
are found through `visible_to`: a foreign stack is 404, too low a role 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.catalog.api.serializers import TemplateDetailSerializer
from apps.catalog.models import TemplateVersion
from apps.catalog.questions import question_names, secret_names, secret_values
from apps.catalog.services import save_as_template
from apps.catalog.versions import find_template_version
from apps.core.api import TenantScopedViewSet, query_flag
from apps.deployments import exceptions as policy_exceptions
from apps.deployments import revisions, services
from apps.deployments.api import serializers as s
from apps.deployments.api.routes import ServiceEndpointsMixin
from apps.deployments.filters import RevisionFilterSet, ServiceFilterSet, StackFilterSet
from apps.deployments.models import Container, Revision, Service, Stack

VOLUMES = OpenApiParameter("volumes", bool, description="Also delete the stack's volumes.")


BODY_FIELDS = {"name", "environment", "template", "version", "compose", "answers", "revision"}


@contextmanager
def answer_errors(version, answers: dict | None) -> Iterator[None]:
    """Errors about single answers come back under one field, as catalog/README.md says:
    `{"answers": {"VAR": ["message"]}}`; other fields (name, version...) stay as they are.

    The services key answer problems by variable, which the pages need to put each
    message under its form field; the API names the body's field instead.
    """
    try:
        yield
    except ValidationError as exc:
        if not hasattr(exc, "error_dict"):
            raise
        variables = (set(question_names(version)) | set(answers or {})) - BODY_FIELDS
        nested = {k: v for k, v in exc.message_dict.items() if k in variables}
        if not nested:
            raise
        errors: dict = {k: v for k, v in exc.message_dict.items() if k not in variables}
        errors["answers"] = nested
        raise exceptions.ValidationError(errors) from exc


class StackViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Deployed stacks: create from a template or compose, act on them, remove them."""

    model = Stack
    filterset_class = StackFilterSet

    def dispatch(self, request, *args, **kwargs):
        """`confirm_exceptions` holds for this request only, whatever happens in it: the
        block resets it even when a handler raises (DRF skips finalize_response then, and
        a WSGI thread would carry the confirmation into the admin's next request)."""
        with policy_exceptions.confirmed(False):
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        """`confirm_exceptions` (create, redeploy, upgrade, rollback; validated by their
        serializers): the service asks for it where it writes a revision that brings
        exceptions only a platform admin grants."""
        super().initial(request, *args, **kwargs)
        flag = request.method == "POST" and isinstance(request.data, dict)
        flag = flag and request.data.get(policy_exceptions.CONFIRM_FIELD) in (True, "true", "1")
        policy_exceptions.confirm_in_this_request(flag)

    def get_queryset(self):
        services_qs = Service.objects.order_by("name")
        stacks = (
            super()
            .get_queryset()
            .select_related(
                "tenant", "environment", "template_version__template", "current_revision"
            )
            .prefetch_related(Prefetch("services", queryset=services_qs))
        )
        if self.action == "list":
            # A list shows each stack's revision number, not its spec, and no containers.
            return stacks.defer("current_revision__spec", "current_revision__compose")
        containers = Container.objects.select_related("service", "host", "node")
        if self.action == "retrieve":
            # Only what the detail shows: the names of the service, host and node, not
            # their JSON columns decoded again for each of a hundred containers.
            containers = containers.only(
                *s.ContainerSerializer.READ_COLUMNS,
                "stack",
                "service__name",
                "host__name",
                "host__kind",
                "node__hostname",
                "node__is_endpoint",
                "node__engine_endpoint",
                "node__engine_verified_at",
            )
        return stacks.prefetch_related(Prefetch("containers", queryset=containers))

    def get_serializer_class(self):
        return {
            "create": s.StackCreateSerializer,
            "retrieve": s.StackDetailSerializer,
            "upgrade": s.UpgradeSerializer,
            "redeploy": s.RedeploySerializer,
            "rollback": s.RollbackSerializer,
            "stop": s.EmptySerializer,
            "start": s.EmptySerializer,
            "restart": s.EmptySerializer,
            "cancel": s.EmptySerializer,
            "save_as_template": s.SaveAsTemplateSerializer,
        }.get(self.action, s.StackSerializer)

    def _detail(self, stack: Stack, code: int = status.HTTP_200_OK) -> Response:
        stack = self.get_queryset().get(pk=stack.pk)
        return Response(s.StackDetailSerializer(stack).data, status=code)

    def retrieve(self, request, *args, **kwargs):
        """The stack as read for the check (its services and containers prefetched),
        not read a second time, unless an expired operation just changed it."""
        stack = self.get_object()
        if services.expire_operation(stack):
            return self._detail(stack)
        return Response(s.StackDetailSerializer(stack).data)

    @extend_schema(responses={201: s.StackDetailSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        environment = data["environment"]
        version = None
        if data.get("template"):
            if data.get("compose"):
                raise ValidationError({"compose": "Give a template or a compose file, not both."})
            version = find_template_version(
                request.user, environment.tenant, data["template"], data.get("version"), self.token
            )
        elif not data.get("compose"):
            raise ValidationError({"compose": "Give a template (and version) or a compose file."})
        with answer_errors(version, data.get("answers")):
            stack = services.create_stack(
                request.user,
                environment,
                data["name"],
                template_version=version,
                answers=data.get("answers"),
                compose=None if version else data["compose"],
            )
        return self._detail(stack, status.HTTP_201_CREATED)

    @extend_schema(parameters=[VOLUMES], responses={202: s.StackDetailSerializer})
    def destroy(self, request, *args, **kwargs):
        stack = self.get_object()  # a foreign stack is 404 before the parameters are read
        stack = services.remove(request.user, stack, volumes=query_flag(request, "volumes"))
        return self._detail(stack, status.HTTP_202_ACCEPTED)

    def _simple(self, operation) -> Response:
        stack = self.get_object()
        serializer = self.get_serializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return self._detail(operation(self.request.user, stack))

    @extend_schema(responses=s.StackDetailSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        return self._simple(services.stop)

    @extend_schema(responses=s.StackDetailSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._simple(services.start)

    @extend_schema(responses=s.StackDetailSerializer)
    @action(detail=True, methods=["post"])
    def restart(self, request, pk=None):
        return self._simple(services.restart)

    @extend_schema(responses=s.StackDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._simple(services.cancel)

    @extend_schema(
        responses=PolymorphicProxySerializer(
            component_name="RedeployResult",
            serializers=[s.StackDetailSerializer, s.RedeployPreviewSerializer],
            resource_type_field_name=None,
        ),
        description="Deploy again with changed answers or (a compose stack) a new compose "
        "file. With `dry_run: true` the answer is what would change, and nothing is written.",
    )
    @action(detail=True, methods=["post"])
    def redeploy(self, request, pk=None):
        stack = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        answers = data.get("answers")
        change = {
            "answers": answers,
            "compose": data.get("compose"),
            "strategy": data.get("strategy"),
        }
        with answer_errors(stack.template_version, answers):
            if data["dry_run"]:
                preview = services.preview_redeploy(request.user, stack, **change)
                preview.pop("fingerprint", None)
                return Response(s.RedeployPreviewSerializer({"dry_run": True, **preview}).data)
            stack = services.redeploy(request.user, stack, **change)
        return self._detail(stack)

    @extend_schema(responses=s.StackDetailSerializer)
    @action(detail=True, methods=["post"])
    def upgrade(self, request, pk=None):
        stack = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if stack.template_version is None:
            raise ValidationError({"version": "This stack was not deployed from a template."})
        versions = TemplateVersion.objects.visible_to(request.user, token=self.token)
        version = versions.filter(
            template=stack.template_version.template, version=data["version"]
        ).first()
        if version is None:
            raise ValidationError({"version": f"No version '{data['version']}' of this template."})
        with answer_errors(version, data.get("answers")):
            stack = services.upgrade(request.user, stack, version, data.get("answers"))
        return self._detail(stack)

    @extend_schema(responses=s.StackDetailSerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        stack = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        number = serializer.validated_data["revision"]
        revision = stack.revisions.filter(number=number).first()
        if revision is None:
            raise ValidationError({"revision": f"This stack has no revision {number}."})
        return self._detail(services.rollback(request.user, stack, revision))

    @extend_schema(responses={201: TemplateDetailSerializer})
    @action(detail=True, methods=["post"], url_path="save-as-template")
    def save_as_template(self, request, pk=None):
        """Publish the stack's compose file and questions (its answers as defaults)."""
        stack = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        metadata = {k: data[k] for k in s.SaveAsTemplateSerializer.METADATA if k in data}
        saved = save_as_template(
            request.user,
            stack,
            metadata,
            data["version"],
            readme=data.get("readme", ""),
            visibility=data["visibility"],
        )
        body = TemplateDetailSerializer(saved.template).data
        return Response(body, status=status.HTTP_201_CREATED)


class ServiceViewSet(
    ServiceEndpointsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet
):
    """The services of your stacks, with their health; scale one with `scale/`, find its
    healthy containers with `endpoints/`."""

    model = Service
    filterset_class = ServiceFilterSet

    def get_queryset(self):
        return super().get_queryset().select_related("stack")

    def get_serializer_class(self):
        return s.ScaleSerializer if self.action == "scale" else s.ServiceSerializer

    @extend_schema(responses=s.ServiceSerializer)
    @action(detail=True, methods=["post"])
    def scale(self, request, pk=None):
        service = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        service = services.scale(request.user, service, serializer.validated_data["replicas"])
        return Response(s.ServiceSerializer(service).data)


class RevisionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Every stack's revisions: immutable specs with a summary of what changed."""

    model = Revision
    filterset_class = RevisionFilterSet

    def get_queryset(self):
        return (
            super()
            .get_queryset()
            .select_related("stack", "created_by", "template_version__template")
            .order_by("stack_id", "-number")
        )

    def get_serializer_class(self):
        return s.RevisionDetailSerializer if self.action == "retrieve" else s.RevisionSerializer

    @extend_schema(parameters=[s.DiffQuerySerializer], responses={200: dict})
    @action(detail=True, methods=["get"])
    def diff(self, request, pk=None):
        """Unified diff from `against` (default: the previous revision) to this one."""
        revision = self.get_object()
        query = s.DiffQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        against_id = query.validated_data.get("against")
        siblings = self.get_queryset().filter(stack_id=revision.stack_id)
        if against_id is None:
            other = siblings.filter(number__lt=revision.number).order_by("-number").first()
        else:
            other = siblings.filter(pk=against_id).first()
            if other is None:
                raise ValidationError({"against": "No such revision of this stack."})
        return Response(
            {
                "from": other.number if other else None,
                "to": revision.number,
                "lines": revision_diff(other, revision),
            }
        )


def revision_diff(old: Revision | None, new: Revision) -> list[str]:
    """The masked diff between two revisions of one stack (either may hold secrets)."""
    names = secret_names(new.template_version, new.answers)
    values = secret_values(new.template_version, new.answers)
    if old is not None:
        names |= secret_names(old.template_version, old.answers)
        values += secret_values(old.template_version, old.answers)
    return revisions.diff(
        old.spec if old else None,
        new.spec,
        label_a=f"r{old.number}" if old else "(none)",
        label_b=f"r{new.number}",
        secret_names=names,
        secret_values=values,
    )
