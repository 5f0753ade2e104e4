"""API plumbing shared by every app: the error format and the tenant-scoped base viewset."""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, permissions, serializers, viewsets
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.filters import ListFilterBackend
from apps.core.roles import Role


def validation_detail(error: DjangoValidationError) -> dict | list:
    if hasattr(error, "error_dict"):
        return {field: [str(m) for m in msgs] for field, msgs in error.message_dict.items()}
    return {"non_field_errors": error.messages}


def exception_handler(exc, context):
    """Service-layer errors become 400 (with the field) and 403, never a 500."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_detail(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    return drf_exception_handler(exc, context)


def query_flag(request, name: str) -> bool:
    """A true/false query parameter (absent or empty: false); anything else is a 400
    naming it, rather than a silent false."""
    value = request.query_params.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise exceptions.ValidationError({name: ["Use true or false."]})


def api_token(request) -> Any:
    """The ApiToken the request authenticated with, or None (session or anonymous)."""
    auth = getattr(request, "auth", None)
    return auth if hasattr(auth, "read_only") else None


class VisibleRelatedField(serializers.PrimaryKeyRelatedField):
    """An id found among the `model` objects the caller can see (with at least `role`,
    when given): any other does not exist for them, with the same message as a missing
    one. Subclasses name the model, the noun of the messages and the role."""

    model: Any = None
    noun = "object"
    role: Any = None

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("queryset", self.model.objects.all())
        super().__init__(**kwargs)
        self.error_messages["does_not_exist"] = f"No such {self.noun}."
        self.error_messages["incorrect_type"] = f"Give the {self.noun}'s id."

    def get_queryset(self):
        request = self.context["request"]
        role = (self.role,) if self.role is not None else ()
        return self.model.objects.visible_to(request.user, *role, token=api_token(request))


class RejectUnknownFieldsMixin:
    """Refuse body keys the serializer does not accept, instead of silently dropping them.

    DRF ignores unknown and read-only keys; for fields like role, tenant or owner that
    would let a client believe it changed something it may not. The error names the key.
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {}
            for key in data:
                field = self.fields.get(key)
                if field is None:
                    errors[key] = ["Unknown field."]
                elif field.read_only:
                    errors[key] = ["This field cannot be set here."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class TokenScopePermission(permissions.BasePermission):
    """Read-only tokens may only read."""

    message = "This token is read-only."

    def has_permission(self, request, view) -> bool:
        token = getattr(request, "auth", None)
        if request.method in permissions.SAFE_METHODS:
            return True
        return not getattr(token, "read_only", False)


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Base for every tenant-owned API resource: the queryset is `visible_to` the caller.

    Reads need `read_role`; writes look objects up with `write_role`, so an object the
    caller may see but not change answers 403, and a foreign object 404. A list is
    narrowed by the app's `filterset_class` (`apps.core.filters.ListFilterBackend`).
    """

    model = None
    filter_backends = [ListFilterBackend]
    read_role = Role.VIEWER
    write_role = Role.MEMBER
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]

    def get_queryset(self):
        return self.model.objects.visible_to(self.request.user, self.read_role, token=self.token)

    def writable_queryset(self):
        return self.model.objects.visible_to(self.request.user, self.write_role, token=self.token)

    @property
    def token(self):
        return api_token(self.request)
