"""Certificates over the API: /api/v1/certificates/ (list, retrieve, upload, delete).

Rows come through `visible_to` (a foreign certificate is 404); the private key is never
returned, by any action. Uploading and deleting go through apps.traffic.certificates,
which decides the tenant from the host name's claim.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from apps.core.api import RejectUnknownFieldsMixin, TenantScopedViewSet
from apps.tenants.filters import TenantSlugFilterSet
from apps.traffic import certificates
from apps.traffic.models import Certificate


class CertificateSerializer(serializers.ModelSerializer):
    """A certificate as shown: no key, ever."""

    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Certificate
        fields = [
            "id",
            "tenant",
            "hostname",
            "kind",
            "state",
            "error",
            "not_after",
            "chain_pem",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CertificateUploadSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    hostname = serializers.CharField(max_length=253)
    chain = serializers.CharField(
        trim_whitespace=False,
        help_text="PEM: the server's certificate first, then each issuer in order.",
    )
    key = serializers.CharField(
        trim_whitespace=False, write_only=True, help_text="PEM private key, no passphrase."
    )
    tenant = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Slug of the tenant a host name no route uses yet is claimed for "
        "(needed when you are a member of several).",
    )


class CertificateFilterSet(TenantSlugFilterSet):
    hostname = django_filters.CharFilter(help_text="Exact host name")
    kind = django_filters.ChoiceFilter(choices=Certificate.Kind.choices)
    state = django_filters.ChoiceFilter(choices=Certificate.State.choices)

    class Meta:
        model = Certificate
        fields = ["tenant", "hostname", "kind", "state"]


class CertificateViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Certificates of the caller's tenants' host names: upload one (chain + key),
    see the generated and ACME ones with their state, delete one."""

    model = Certificate
    serializer_class = CertificateSerializer
    filterset_class = CertificateFilterSet

    def get_queryset(self):
        # A certificate the caller may see but not change: found, then refused (403) by
        # the service's role check; another tenant's: not found (404).
        return super().get_queryset().select_related("tenant")

    def get_serializer_class(self):
        return CertificateUploadSerializer if self.action == "create" else CertificateSerializer

    @extend_schema(request=CertificateUploadSerializer, responses={201: CertificateSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        certificate = certificates.upload_certificate(
            actor=request.user,
            hostname=data["hostname"],
            chain_pem=data["chain"],
            key_pem=data["key"],
            tenant_slug=data.get("tenant", "").strip(),
            token=self.token,
        )
        return Response(CertificateSerializer(certificate).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Certificate) -> None:
        certificates.delete_certificate(actor=self.request.user, certificate=instance)
