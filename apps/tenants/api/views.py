"""Tenants, environments, memberships and invitations over the API.

Each write is one call to apps.tenants.services, which checks the caller's role and
records the Event; the viewsets only find objects through `visible_to` and shape data.
"""

from django.db.models import OuterRef, Subquery
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import TenantScopedViewSet
from apps.core.roles import Role
from apps.tenants import quotas, services
from apps.tenants.api.serializers import (
    EnvironmentCreateSerializer,
    EnvironmentSerializer,
    InvitationAcceptSerializer,
    InvitationCreatedSerializer,
    InvitationSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
    QuotaSerializer,
    QuotaUsageSerializer,
    TenantSerializer,
    TenantUpdateSerializer,
)
from apps.tenants.filters import TenantSlugFilterSet
from apps.tenants.models import Environment, Invitation, Membership, Tenant


class TenantViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """The tenants you belong to. Anyone signed in may create one and becomes its owner."""

    model = Tenant
    serializer_class = TenantSerializer
    lookup_field = "slug"

    def get_queryset(self):
        user_id = self.request.user.pk
        mine = Membership.objects.filter(tenant=OuterRef("pk"), user_id=user_id)
        return super().get_queryset().annotate(role=Subquery(mine.values("role")[:1]))

    def get_serializer_class(self):
        if self.action == "partial_update":
            return TenantUpdateSerializer
        return TenantSerializer

    def create(self, request, *args, **kwargs):
        if self.token is not None and self.token.tenant_id:
            raise exceptions.PermissionDenied("A token bound to a tenant cannot create tenants.")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = services.create_tenant(actor=request.user, **serializer.validated_data)
        data = self.get_serializer(self.get_queryset().get(pk=tenant.pk)).data
        return Response(data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        tenant = self.get_object()
        serializer = self.get_serializer(tenant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        services.update_tenant(
            actor=request.user,
            tenant=tenant,
            name=fields.get("name", tenant.name),
            description=fields.get("description", tenant.description),
        )
        return Response(self.get_serializer(self.get_object()).data)

    def destroy(self, request, *args, **kwargs):
        services.delete_tenant(actor=request.user, tenant=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=QuotaSerializer, responses={200: QuotaUsageSerializer})
    @action(detail=True, methods=["get", "patch"])
    def quota(self, request, slug=None):
        """The tenant's quotas with current usage (0: unlimited); platform admins PATCH
        `{"stacks", "containers", "memory", "cpus", "pids", "registry_storage"}`."""
        tenant = self.get_object()
        if request.method == "PATCH":
            if not isinstance(request.data, dict):
                raise exceptions.ValidationError({"non_field_errors": ["Send a JSON object."]})
            services.set_quotas(actor=request.user, tenant=tenant, values=dict(request.data))
        return Response({line.key: line.as_dict() for line in quotas.quota_lines(tenant)})


class EnvironmentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """A tenant's environments (dev, staging, prod, ...); admins add and remove them."""

    model = Environment
    filterset_class = TenantSlugFilterSet
    serializer_class = EnvironmentSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("tenant")

    def get_serializer_class(self):
        if self.action == "create":
            return EnvironmentCreateSerializer
        return EnvironmentSerializer

    @extend_schema(responses={201: EnvironmentSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        env = services.create_environment(actor=request.user, **serializer.validated_data)
        return Response(EnvironmentSerializer(env).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        env = self.get_object()
        serializer = self.get_serializer(env, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        env = services.update_environment(
            actor=request.user,
            environment=env,
            name=fields.get("name", env.name),
            description=fields.get("description", env.description),
        )
        return Response(self.get_serializer(env).data)

    def destroy(self, request, *args, **kwargs):
        services.delete_environment(actor=request.user, environment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class MembershipViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """Who is in your tenants. People join by invitation; admins change roles or remove.

    Removing a membership (or leaving) revokes that person's tokens bound to the tenant.
    """

    model = Membership
    filterset_class = TenantSlugFilterSet
    serializer_class = MembershipSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("tenant", "user")

    def get_serializer_class(self):
        if self.action == "partial_update":
            return MembershipRoleSerializer
        return MembershipSerializer

    def partial_update(self, request, *args, **kwargs):
        membership = self.get_object()
        serializer = self.get_serializer(membership, data=request.data)  # the role is required
        serializer.is_valid(raise_exception=True)
        membership = services.change_role(
            actor=request.user, membership=membership, role=serializer.validated_data["role"]
        )
        return Response(self.get_serializer(membership).data)

    def destroy(self, request, *args, **kwargs):
        services.remove_member(actor=request.user, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def accept_url(request, raw_token: str) -> str:
    """The link to send: the page where the invited person signs in and joins."""
    return request.build_absolute_uri(reverse("invitations:accept", kwargs={"token": raw_token}))


class InvitationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """Invitations to your tenants (admins only): single use, expiring, bound to an address."""

    model = Invitation
    filterset_class = TenantSlugFilterSet
    serializer_class = InvitationSerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def get_queryset(self):
        return super().get_queryset().select_related("tenant", "invited_by")

    @extend_schema(responses={201: InvitationCreatedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation, raw = services.invite(actor=request.user, **serializer.validated_data)
        invitation.token = raw
        invitation.accept_url = accept_url(request, raw)
        data = InvitationCreatedSerializer(invitation, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: InvitationSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        invitation = services.revoke_invitation(actor=request.user, invitation=self.get_object())
        return Response(self.get_serializer(invitation).data)

    @extend_schema(request=InvitationAcceptSerializer, responses={201: MembershipSerializer})
    @action(detail=False, methods=["post"], url_path="accept", url_name="accept")
    def accept(self, request):
        """Join a tenant with the token from an invitation sent to your e-mail address."""
        if self.token is not None and self.token.tenant_id:
            raise exceptions.PermissionDenied("A token bound to a tenant cannot join others.")
        serializer = InvitationAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.accept_invitation(
            user=request.user, raw_token=serializer.validated_data["token"]
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)
