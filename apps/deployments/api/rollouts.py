"""Rollouts over the API: /api/v1/rollouts/ (list, retrieve) and a canary's controls,
POST {id}/weight/ {"weight": 20}, {id}/promote/, {id}/abort/.

Reads are tenant-filtered with `visible_to` (another tenant's rollout is 404); the
controls call apps.deployments.rollout, which checks the member role (a viewer gets
403) and the rollout's state (400 when it is not a canary), as the stack page does.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import RejectUnknownFieldsMixin, TenantScopedViewSet
from apps.core.filters import IdFilter
from apps.deployments import rollout as rollouts
from apps.deployments.models import Rollout


class RolloutFilterSet(django_filters.FilterSet):
    """`?stack=<id>`, `?service=<name>`, `?state=<state>`."""

    stack = IdFilter(field_name="stack_id", help_text="Only rollouts of this stack (id).")
    service = django_filters.CharFilter(field_name="service", help_text="A service name.")
    state = django_filters.ChoiceFilter(choices=Rollout.State.choices)

    class Meta:
        model = Rollout
        fields: list[str] = []


class RolloutSerializer(serializers.ModelSerializer):
    """A service's move from one revision to another; `canary_weight` is the percent of
    its routes' traffic the new revision gets while the canary runs."""

    class Meta:
        model = Rollout
        fields = [
            "id",
            "stack",
            "service",
            "strategy",
            "state",
            "from_revision",
            "to_revision",
            "canary_weight",
            "message",
            "started_at",
            "updated_at",
            "finished_at",
        ]
        read_only_fields = fields


class WeightSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """The body of weight/: the canary's new share (the range is the service's rule)."""

    weight = serializers.IntegerField(help_text="Percent of the traffic, 1 to 99.")


class RolloutViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Every rollout of your stacks, newest first; a canary is steered with `weight/`,
    `promote/` and `abort/`."""

    model = Rollout
    filterset_class = RolloutFilterSet

    def get_queryset(self):
        return super().get_queryset().select_related("stack__tenant").order_by("-started_at", "-pk")

    def get_serializer_class(self):
        return WeightSerializer if self.action == "weight" else RolloutSerializer

    def _acted(self, changed: Rollout) -> Response:
        return Response(RolloutSerializer(changed).data)

    @extend_schema(request=WeightSerializer, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def weight(self, request, pk=None):
        """Send `weight` % of the route's traffic to the canary."""
        found = self.get_object()
        serializer = WeightSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        weight = serializer.validated_data["weight"]
        return self._acted(rollouts.set_canary_weight(request.user, found, weight))

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        """Replace the rest with the canary's revision; the old containers are drained."""
        return self._acted(rollouts.promote(request.user, self.get_object()))

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request, pk=None):
        """Drain and remove the canary; the stack goes back to the revision it came from."""
        return self._acted(rollouts.abort(request.user, self.get_object()))
