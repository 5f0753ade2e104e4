"""Per-route requests, 5xx answers and latency, read from the real frontier's own
statistics (HAProxy's `show stat` on its admin socket) by the collector."""

from __future__ import annotations

import pytest

from apps.monitoring import collector
from apps.monitoring.models import RouteSample, Series
from apps.traffic import frontier as frontier_config

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def test_collector_reads_requests_and_errors_per_route(frontier, routed_web):
    served = routed_web("metered.localhost", name="served")
    served.add_container("1.0")
    broken = routed_web("broken.localhost", name="broken")
    broken.add_container("1.0", health="unhealthy")  # no server: HAProxy answers 503
    assert frontier_config.apply("test").ok
    for _ in range(3):
        assert frontier.get("metered.localhost")[0] == 200
    for _ in range(2):
        assert frontier.get("broken.localhost")[0] == 503

    collector.collect()

    def latest(route) -> RouteSample:
        series = Series.objects.get(kind=Series.Kind.ROUTE, route_pk=route.pk)
        assert (series.tenant_id, series.name) == (route.tenant_id, f"{route.hostname}/")
        return RouteSample.objects.filter(series=series, tier=0).latest("at")

    ok, failing = latest(served.route), latest(broken.route)
    assert (ok.requests, ok.errors) == (3, 0)
    assert (failing.requests, failing.errors) == (2, 2)
