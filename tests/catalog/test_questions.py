"""berth.yml parsing: every question type and rule, with messages naming file and field."""

from __future__ import annotations

import pytest

from apps.catalog.questions import BerthConfigError, dump_berth_yml, parse_berth_yml
from apps.catalog.semver import check_range, matches


def problems_of(text: str) -> list[str]:
    with pytest.raises(BerthConfigError) as exc:
        parse_berth_yml(text, source="app/1.0.0/berth.yml")
    return exc.value.problems


FULL = """
questions:
  - {variable: NAME, label: Name, type: string, default: web, min: 2, max: 10, pattern: "[a-z]+"}
  - {variable: COUNT, label: Count, type: int, default: 2, min: 1, max: 5}
  - {variable: DEBUG, label: Debug, type: bool, default: false}
  - {variable: SIZE, label: Size, type: enum, options: [s, m, l], default: m}
  - {variable: DB_PASSWORD, label: DB password, type: password, min: 16}
  - {variable: API_KEY, label: API key, type: secret}
  - {variable: DOMAIN, label: Domain, type: hostname, group: Routing}
  - {variable: MOTD, label: Message, type: multiline}
  - {variable: LEVEL, label: Level, type: string, default: info, show_if: {DEBUG: true}}
services:
  web:
    scale: 2
    routes: [{hostname: "${DOMAIN}", path: /, port: 8080}]
    upgrade: {strategy: canary, canary_weight: 20, interval: 10s}
    health_check: {test: ["CMD", "true"], interval: 5s, retries: 3}
upgrade_from: ["1.0.0", ">=1.1.0 <2.0.0", "*"]
migrations:
  - rename: {from: OLD_NAME, to: NAME}
  - drop: GONE
  - set: {SIZE: l, COUNT: 3}
"""


def test_a_full_file_parses_and_normalizes():
    config = parse_berth_yml(FULL, version="2.0.0")
    assert config.variables[:3] == ["NAME", "COUNT", "DEBUG"]
    count = config.question("COUNT")
    assert count.default == 2 and count.min == 1 and count.max == 5
    assert config.question("DEBUG").default is False
    assert config.question("LEVEL").show_if == {"DEBUG": (True,)}
    assert config.question("DOMAIN").group == "Routing"
    assert config.upgrade_from == ("1.0.0", ">=1.1.0 <2.0.0", "*")
    ops = [(m.op, m.variable, m.to, m.value) for m in config.migrations]
    assert ops == [
        ("rename", "OLD_NAME", "NAME", ""),
        ("drop", "GONE", "", ""),
        ("set", "SIZE", "", "l"),
        ("set", "COUNT", "", 3),
    ]
    assert config.services["web"]["scale"] == 2


def test_dump_round_trips():
    config = parse_berth_yml(FULL, version="2.0.0")
    again = parse_berth_yml(dump_berth_yml(config), version="2.0.0")
    assert again.to_dict() == config.to_dict()


def test_empty_file_has_no_questions():
    assert parse_berth_yml("").questions == ()


@pytest.mark.parametrize(
    "question, expected",
    [
        ("{variable: lower, label: L, type: string}", "variable must match"),
        ("{variable: BERTH_X, label: L, type: string}", "prefix BERTH_ is reserved"),
        ("{variable: X, type: string}", "label is required"),
        ("{variable: X, label: L, type: text}", "type 'text' is not one of"),
        ("{variable: X, label: L, type: string, colour: red}", "unknown key 'colour'"),
        ("{variable: X, label: L, type: enum}", "an enum needs a list"),
        ("{variable: X, label: L, type: string, options: [a]}", "options are only for enum"),
        ("{variable: X, label: L, type: enum, options: [a, a]}", "options must be unique"),
        ("{variable: X, label: L, type: enum, options: [a], default: b}", "Choose one of: a."),
        ("{variable: X, label: L, type: int, default: '3'}", "must be a whole number"),
        ("{variable: X, label: L, type: int, default: 9, max: 5}", "Must be at most 5."),
        ("{variable: X, label: L, type: string, default: 3}", "must be a string"),
        ("{variable: X, label: L, type: bool, min: 1}", "min is not allowed for bool"),
        ("{variable: X, label: L, type: int, min: 5, max: 1}", "min is greater than max"),
        ("{variable: X, label: L, type: string, pattern: '('}", "pattern does not compile"),
        ("{variable: X, label: L, type: int, pattern: '[0-9]'}", "pattern is not allowed"),
        ("{variable: X, label: L, type: password, default: x}", "default is not allowed"),
        (
            "{variable: X, label: L, type: string, default: ab, pattern: '[0-9]+'}",
            "Must match the pattern",
        ),
        ("{variable: X, label: L, type: hostname, default: 'a_b'}", "Enter a valid hostname"),
        (
            "{variable: X, label: L, type: string, show_if: {LATER: x}}",
            "not a question asked earlier",
        ),
    ],
)
def test_bad_questions_are_named(question, expected):
    problems = problems_of(f"questions:\n  - {question}\n")
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("app/1.0.0/berth.yml: questions[0]") for p in problems), problems


def test_duplicate_variable_and_show_if_value_checked():
    problems = problems_of(
        "questions:\n"
        "  - {variable: A, label: A, type: bool}\n"
        "  - {variable: A, label: B, type: string}\n"
        "  - {variable: C, label: C, type: string, show_if: {A: maybe}}\n"
    )
    assert any("questions[1] (A): variable A is asked twice" in p for p in problems)
    assert any("questions[2] (C): show_if: 'maybe'" in p for p in problems)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("colour: red", "colour: unknown key"),
        ("upgrade_from: [abc]", "upgrade_from[0]"),
        ("upgrade_from: '1.0.0'", "upgrade_from: must be a list"),
        ("migrations: [{rename: {from: A}}]", "migrations[0].rename"),
        ("migrations: [{explode: A}]", "exactly one key"),
        ("migrations: [{set: {NOPE: 1}}]", "NOPE is not a question"),
        ("services: {web: {scale: 500}}", "services.web.scale"),
        ("services: {web: {replicas: 2}}", "services.web.replicas: unknown key"),
        ("services: {web: {upgrade: {strategy: canary}}}", "a canary needs a route"),
        ("services: {web: {upgrade: {canary_weight: 5}}}", "only with strategy: canary"),
        ("services: {web: {routes: [{hostname: x, port: 0}]}}", "routes[0].port"),
        ("services: {web: {routes: [{hostname: x, path: '/a;b', port: 80}]}}", "routes[0].path"),
        ("services: {web: {routes: [{hostname: x, path: '/a b', port: 80}]}}", "routes[0].path"),
        ("services: {web: {health_check: {interval: soon}}}", "is not a duration"),
        ("services: {web: {upgrade: {monitor: soon}}}", "upgrade.monitor: 'soon' is not"),
        ("services: {web: {upgrade: {order: sideways}}}", "start-first or stop-first"),
        ("services: {web: {upgrade: {failure_action: continue}}}", "must be rollback or pause"),
        ("min_berth_version: newest", "min_berth_version"),
    ],
)
def test_bad_top_level_and_services(text, expected):
    problems = problems_of(text)
    assert any(expected in p for p in problems), problems


def test_migrations_rules():
    base = (
        "questions:\n  - {variable: NEW, label: N, type: string}\n"
        "  - {variable: PW, label: P, type: password}\n"
    )
    assert any(
        "'to' variable X" in p
        for p in problems_of(base + "migrations: [{rename: {from: OLD, to: X}}]")
    )
    assert any(
        "'from' variable NEW" in p
        for p in problems_of(base + "migrations: [{rename: {from: NEW, to: NEW}}]")
    )
    assert any(
        "not a question of this version" in p
        for p in problems_of(base + "migrations: [{drop: NEW}]")
    )
    assert any("cannot be set" in p for p in problems_of(base + "migrations: [{set: {PW: x}}]"))


def test_yaml_bombs_are_refused():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with pytest.raises(BerthConfigError):
        parse_berth_yml(bomb)


@pytest.mark.parametrize(
    "version, expression, expected",
    [
        ("1.5.0", ">=1.0.0 <2.0.0", True),
        ("2.0.0", ">=1.0.0 <2.0.0", False),
        ("1.9.9", "1.x", True),
        ("2.0.0", "1.x", False),
        ("1.2.7", "1.2.*", True),
        ("0.9.0", "0.9.0", True),
        ("0.9.1", "0.9.0", False),
        ("0.1.0", "*", True),
        ("3.0.0", "1.x || >=3.0.0", True),
        ("1.0.0-rc.1", "<1.0.0", True),
    ],
)
def test_semver_ranges(version, expression, expected):
    assert matches(version, expression) is expected


def test_bad_range_raises():
    with pytest.raises(ValueError):
        check_range("banana")
