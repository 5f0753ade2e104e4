"""berth.yml `health_check`: Compose's form, or Berth's own http/tcp probe, one at a time."""

from __future__ import annotations

import pytest

from apps.catalog.questions import BerthConfigError, parse_berth_yml


def problems_of(text: str) -> list[str]:
    try:
        parse_berth_yml(text, source="app/1.0.0/berth.yml")
    except BerthConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


def check(body: str) -> list[str]:
    return problems_of(f"services: {{web: {{health_check: {body}}}}}")


@pytest.mark.parametrize(
    "body",
    [
        "{http: {port: 8080}}",
        "{http: {port: 8080, path: /health, expect_status: 204}, interval: 2s, retries: 2}",
        "{tcp: {port: 5432}, interval: 5s, timeout: 1s, start_period: 30s}",
        "{test: [CMD, 'true'], interval: 5s}",
        "{disable: true}",
        "{interval: 1s}",
    ],
)
def test_accepted_forms(body):
    assert check(body) == []


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ("{http: {path: /health}}", "health_check.http.port", "is required"),
        ("{http: {port: 0}}", "health_check.http.port", "1 to 65535"),
        ("{tcp: {port: '5432'}}", "health_check.tcp.port", "1 to 65535"),
        ("{http: {port: 80, path: health}}", "health_check.http.path", "must start with /"),
        ("{http: {port: 80, path: '/a b'}}", "health_check.http.path", "no spaces"),
        ("{http: {port: 80, expect_status: 99}}", "health_check.http.expect_status", "100 to 599"),
        ("{http: {port: 80, method: HEAD}}", "health_check.http.method", "unknown key"),
        ("{tcp: {port: 80, path: /}}", "health_check.tcp.path", "unknown key"),
        ("{http: 8080}", "health_check.http", "must be a mapping"),
        ("{http: {port: 80}, tcp: {port: 81}}", "health_check", "http and tcp cannot be set"),
        ("{test: [CMD, 'true'], http: {port: 80}}", "health_check", "test and http cannot"),
        ("{test: [CMD, 'true'], disable: true}", "health_check", "test and disable cannot"),
        ("{tcp: {port: 80}, interval: soon}", "health_check.interval", "not a duration"),
        ("{grpc: {port: 80}}", "health_check.grpc", "unknown key"),
    ],
)
def test_refused_forms_name_the_field(body, where, words):
    found = check(body)
    assert any(f"services.web.{where}" in p and words in p for p in found), found
