"""Your own API tokens over the API: list, create (raw key shown once), revoke.

A token can only mint tokens no stronger than itself and no longer-lived: a read-only
token cannot create any (TokenScopePermission), a tenant-bound one only for its tenant,
and a new token expires (and is revoked) with the token that created it; create_token
enforces all of it (`parent`). A viewer's tokens must be read-only: create_token refuses
others, so the UI and `createtoken` agree.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

import apps.accounts.api.schema  # noqa: F401  (registers the Bearer scheme with the schema)
from apps.accounts import services
from apps.accounts.api.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
)
from apps.accounts.models import ApiToken
from apps.core.api import TenantScopedViewSet


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """The signed-in user's personal API tokens; deleting one revokes it."""

    model = ApiToken
    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        mine = super().get_queryset().filter(user_id=self.request.user.pk)
        return mine.select_related("tenant")

    def get_serializer_class(self):
        if self.action == "create":
            return ApiTokenCreateSerializer
        return ApiTokenSerializer

    @extend_schema(responses={201: ApiTokenCreatedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        tenant = fields.get("tenant")
        if tenant is None and self.token is not None:
            tenant = self.token.tenant  # a tenant-bound caller mints tenant-bound tokens
        token, raw = services.create_token(
            actor=request.user,
            name=fields["name"],
            tenant=tenant,
            read_only=fields.get("read_only", False),
            expires_days=fields.get("expires_days"),
            parent=self.token,
        )
        token.token = raw
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.revoke_token(actor=request.user, token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
