"""Metrics: a collector sampling containers, hosts and frontier routes on an interval,
stored in downsampled tiers, read by `queries.series` and exposed to Prometheus."""
