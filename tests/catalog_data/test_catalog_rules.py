"""The catalog checks catch what they claim to: each rule fed a small broken example."""

from __future__ import annotations

import pytest

from tests.catalog_data import catalog_rules as rules


def compose(**service):
    return {"services": {"web": {"image": "example/web:1.0", **service}}}


# ---------------------------------------------------------------------------------------
# Versions and ranges
# ---------------------------------------------------------------------------------------


def test_semver_order_follows_precedence():
    versions = ["1.10.0", "1.0.0", "1.0.0-rc.1", "1.0.0-alpha", "1.2.0", "1.0.0-rc.10"]
    assert sorted(versions, key=rules.semver_key) == [
        "1.0.0-alpha", "1.0.0-rc.1", "1.0.0-rc.10", "1.0.0", "1.2.0", "1.10.0",
    ]  # fmt: skip


@pytest.mark.parametrize("bad", ["v1.0.0", "1.0", "01.0.0", "1.0.0+build", "1.0.0-"])
def test_semver_refuses_malformed_versions(bad):
    assert not rules.SEMVER.fullmatch(bad)


@pytest.mark.parametrize(
    ("item", "version", "expected"),
    [
        ("1.0.0", "1.0.0", True),
        ("1.0.0", "1.0.1", False),
        ("*", "0.1.0", True),
        (">=1.0.0 <1.2.0", "1.1.5", True),
        (">=1.0.0 <1.2.0", "1.2.0", False),
        (">1.0.0", "1.0.0", False),
        ("<=2.0.0", "2.0.0-rc.1", True),
    ],
)
def test_upgrade_ranges(item, version, expected):
    assert rules.range_problem(item) is None
    assert rules.range_matches(item, version) is expected


@pytest.mark.parametrize("bad", [">= 1.0.0", "~1.0.0", "^1.0.0", "1.x", "", 1])
def test_malformed_ranges_are_reported(bad):
    assert rules.range_problem(bad) is not None


# ---------------------------------------------------------------------------------------
# Questions and answers
# ---------------------------------------------------------------------------------------


def question(**fields):
    return {"variable": "NAME", "label": "Name", "type": "string", **fields}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"variable": "lower"}, "variable must match"),
        ({"variable": "BERTH_X"}, "reserved"),
        ({"type": "text"}, "is not one of"),
        ({"colour": "red"}, "unknown key"),
        ({"type": "enum"}, "needs 1 to 50 options"),
        ({"type": "enum", "options": ["a", "a"]}, "not unique"),
        ({"type": "enum", "options": ["a", True]}, "quote it"),
        ({"options": ["a"]}, "only for enum"),
        ({"type": "bool", "min": 1}, "not allowed for bool"),
        ({"type": "int", "pattern": "[0-9]+"}, "not allowed for int"),
        ({"pattern": "("}, "does not compile"),
        ({"min": 5, "max": 2}, "larger than max"),
        ({"type": "password", "default": "hunter2"}, "cannot have a default"),
        ({"type": "int", "default": "8080"}, "Enter a whole number"),
        ({"type": "int", "default": 70000, "max": 65535}, "at most 65535"),
        ({"default": "x" * 10, "max": 5}, "at most 5 characters"),
        ({"type": "hostname", "default": "bad_host"}, "valid hostname"),
        ({"type": "enum", "options": ["a"], "default": "b"}, "Choose one of: a"),
        ({"pattern": "[a-z]+", "default": "ABC"}, "Must match the pattern"),
        ({"show_if": {"LATER": True}}, "not an earlier question"),
    ],
)
def test_broken_questions_are_reported(fields, expected):
    problems = rules.check_questions([question(**fields)])
    assert any(expected in p for p in problems), problems


def test_show_if_needs_a_valid_answer_of_an_earlier_question():
    flag = {"variable": "FLAG", "label": "Flag", "type": "bool"}
    good = question(show_if={"FLAG": True})
    assert rules.check_questions([flag, good]) == []
    bad = question(show_if={"FLAG": "maybe"})
    assert any("not a valid answer" in p for p in rules.check_questions([flag, bad]))
    assert rules.is_shown(good, {"FLAG": True})
    assert not rules.is_shown(good, {"FLAG": False})


def test_duplicate_variables_are_reported():
    problems = rules.check_questions([question(), question()])
    assert any("defined twice" in p for p in problems)


@pytest.mark.parametrize(
    ("q", "value", "message"),
    [
        ({"type": "int", "min": 1}, "0", "Must be at least 1."),
        ({"type": "int"}, "1.5", "Enter a whole number."),
        ({"type": "bool"}, "perhaps", "Enter true or false."),
        ({"type": "string", "required": True}, "", "This answer is required."),
        ({"type": "string"}, "two\nlines", "Must be a single line of text."),
        ({"type": "hostname"}, "-bad.example.com", "Enter a valid hostname"),
        ({"type": "hostname"}, "10.0.0.1", "Enter a valid hostname"),
        ({"type": "enum", "options": ["x", "y"]}, "z", "Choose one of: x, y."),
        ({"type": "password", "min": 12}, "short", "Must be at least 12 characters."),
        ({"type": "string"}, ["a"], "Expected a string."),
    ],
)
def test_answer_messages(q, value, message):
    errors = rules.answer_errors({"variable": "V", "label": "V", **q}, value)
    assert any(e.startswith(message) for e in errors), errors


@pytest.mark.parametrize(
    ("q", "value"),
    [
        ({"type": "int", "min": 1, "max": 10}, "7"),
        ({"type": "bool"}, "on"),
        ({"type": "hostname"}, "Git.Example.COM"),
        ({"type": "multiline"}, "a\nb\tc"),
    ],
)
def test_valid_answers(q, value):
    assert rules.answer_errors({"variable": "V", "label": "V", **q}, value) == []


# ---------------------------------------------------------------------------------------
# berth.yml services
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "service_settings", "expected"),
    [
        ({}, {"scale": 101}, "scale must be"),
        ({"deploy": {"replicas": 2}}, {"scale": 1}, "both set"),
        ({"deploy": {"update_config": {}}}, {"upgrade": {}}, "both set"),
        ({}, {"upgrade": {"strategy": "canary"}}, "needs a route"),
        ({}, {"upgrade": {"strategy": "blue-green"}}, "is not rolling or canary"),
        ({}, {"upgrade": {"canary_weight": 10}}, "only for the canary"),
        ({}, {"routes": [{"hostname": "a", "port": 0}]}, "port must be"),
        ({}, {"routes": [{"hostname": "a", "path": "x", "port": 80}]}, "must start with /"),
        ({}, {"routes": [{"hostname": "a", "port": 80}] * 2}, "same hostname and path"),
        ({}, {"health_check": {"test": ["RUN", "x"]}}, "must start with CMD"),
        ({}, {"health_check": {"test": "true", "interval": "soon"}}, "not a duration"),
        ({}, {"replicas": 2}, "unknown key"),
    ],
)
def test_broken_service_settings_are_reported(service, service_settings, expected):
    problems = rules.check_berth_yml({"services": {"web": service_settings}}, compose(**service))
    assert any(expected in p for p in problems), problems


def test_two_services_cannot_share_a_route():
    route = {"routes": [{"hostname": "${DOMAIN}", "port": 80}]}
    spec = {"services": {"web": {"image": "a:1"}, "api": {"image": "b:1"}}}
    problems = rules.check_berth_yml({"services": {"web": route, "api": route}}, spec)
    assert problems == [
        "services.api: a route has the same hostname and path as one of services.web"
    ]


def test_settings_for_an_unknown_service_are_reported():
    problems = rules.check_berth_yml({"services": {"db": {}}}, compose())
    assert problems == ["services.db: no such service in docker-compose.yml"]


def test_unknown_top_level_keys_are_reported():
    assert rules.check_berth_yml({"question": []}, compose()) == ["unknown key 'question'"]


# ---------------------------------------------------------------------------------------
# Variables
# ---------------------------------------------------------------------------------------


def test_interpolations_are_found_nested_and_escapes_skipped():
    found = list(rules.interpolations("$$HOME ${A:-${B}} $C ${D:?needed}"))
    assert found == [("A", ":-", "${B}"), ("B", None, ""), ("C", None, ""), ("D", ":?", "needed")]


def test_an_unknown_variable_without_default_is_reported():
    problems = rules.check_variable_usage(compose(environment={"T": "${TOKEN}"}), {})
    assert problems == [
        "docker-compose.yml: services.web.environment.T: variable 'TOKEN' is neither "
        "a question nor given a default"
    ]


def test_defaults_builtins_and_show_if_count_as_uses():
    berth = {
        "questions": [
            {"variable": "FLAG", "label": "F", "type": "bool"},
            {"variable": "HOST", "label": "H", "type": "hostname", "show_if": {"FLAG": True}},
        ],
        "services": {"web": {"routes": [{"hostname": "${HOST}", "port": 80}]}},
    }
    spec = compose(environment={"A": "${OPTIONAL:-x}", "B": "${BERTH_STACK_NAME}"})
    assert rules.check_variable_usage(spec, berth) == []


def test_unused_questions_are_reported():
    berth = {"questions": [{"variable": "UNUSED", "label": "U", "type": "string"}]}
    assert rules.check_variable_usage(compose(), berth) == [
        "question UNUSED: variable 'UNUSED' is not used in docker-compose.yml or berth.yml"
    ]


def test_compose_fallback_must_equal_the_question_default():
    berth = {"questions": [{"variable": "P", "label": "P", "type": "int", "default": 80}]}
    problems = rules.check_variable_usage(compose(environment={"P": "${P:-8080}"}), berth)
    assert len(problems) == 1 and "differs from the question's default" in problems[0]


def test_a_hidden_question_cannot_be_required_in_compose():
    berth = {
        "questions": [
            {"variable": "FLAG", "label": "F", "type": "bool"},
            {"variable": "X", "label": "X", "type": "string", "show_if": {"FLAG": True}},
        ]
    }
    problems = rules.check_variable_usage(compose(environment={"X": "${X:?x}"}), berth)
    assert len(problems) == 1 and "may be hidden" in problems[0]


# ---------------------------------------------------------------------------------------
# Forbidden Compose usage and conventions
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ({"privileged": True}, "uses privileged"),
        ({"cap_add": ["NET_ADMIN"]}, "uses cap_add"),
        ({"network_mode": "host"}, "uses network_mode"),
        ({"pid": "host"}, "uses pid"),
        ({"volumes": ["/srv/data:/data"]}, "bind mount of host path '/srv/data'"),
        ({"volumes": ["./data:/data"]}, "bind mount of host path './data'"),
        ({"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}, "engine socket"),
        ({"volumes": [{"type": "bind", "source": "/", "target": "/host"}]}, "a bind mount"),
        ({"volumes": ["/data"]}, "anonymous volume"),
        ({"labels": {"io.berth.stack": "other"}}, "Berth's namespace"),
        ({"labels": ["io.berth.tenant=x"]}, "Berth's namespace"),
        ({"volumes_from": ["other"]}, "uses volumes_from"),
        ({"security_opt": ["seccomp=unconfined"]}, "uses security_opt"),
    ],
)
def test_forbidden_compose_usage_is_reported(service, expected):
    problems = rules.forbidden_usage(compose(**service))
    assert any(expected in p for p in problems), problems


def test_external_volumes_are_reported():
    spec = {**compose(volumes=["data:/data"]), "volumes": {"data": {"external": True}}}
    assert rules.forbidden_usage(spec) == ["volumes.data: uses external"]


def test_conventions():
    spec = {
        "services": {"web": {"image": "nginx", "ports": ["127.0.0.1:80:80"], "volumes": ["d:/x"]}}
    }
    problems = rules.convention_problems(spec, {})
    assert "web: image nginx is not pinned to a version tag" in problems
    assert any("no health check" in p for p in problems)
    assert any("restart should be unless-stopped" in p for p in problems)
    assert any("limits.memory" in p for p in problems)
    assert any("names a host address" in p for p in problems)
    assert any("not declared at the top level" in p for p in problems)


@pytest.mark.parametrize("port", ["8080", "${HTTP_PORT:-8080}:80", "${BIND_IP:-127.0.0.1}:80:80"])
def test_ports_left_to_berth_are_fine(port):
    assert rules._port_problems(port) == []


# ---------------------------------------------------------------------------------------
# Upgrades
# ---------------------------------------------------------------------------------------

V1 = {"MESSAGE": {}, "PORT": {}, "OLD": {}}
V2 = {"GREETING": {"type": "string"}, "PORT": {}, "THEME": {"type": "enum", "options": ["a"]}}


def test_an_upgrade_that_would_lose_an_answer_is_reported():
    berth = {
        "upgrade_from": ["1.0.0"],
        "migrations": [{"rename": {"from": "MESSAGE", "to": "GREETING"}}],
    }
    problems = rules.check_upgrades(
        "2.0.0", berth, V2, {"1.0.0": V1}, {"2.0.0": berth["migrations"]}
    )
    assert problems == [
        "upgrade_from: answers to OLD (a question of 1.0.0) would be lost: "
        "add a rename or drop migration"
    ]
    berth["migrations"].append({"drop": "OLD"})
    assert (
        rules.check_upgrades("2.0.0", berth, V2, {"1.0.0": V1}, {"2.0.0": berth["migrations"]})
        == []
    )


def test_migrations_of_intermediate_versions_apply():
    middle = [{"drop": "OLD"}]
    last = [{"rename": {"from": "MESSAGE", "to": "GREETING"}}]
    berth = {"upgrade_from": ["*"], "migrations": last}
    older = {"1.0.0": V1, "1.5.0": {"MESSAGE": {}, "PORT": {}}}
    migrations = {"1.0.0": [], "1.5.0": middle, "2.0.0": last}
    assert rules.check_upgrades("2.0.0", berth, V2, older, migrations) == []


@pytest.mark.parametrize(
    ("berth", "expected"),
    [
        ({"upgrade_from": ["1.1.0"]}, "does not exist or is not older"),
        ({"upgrade_from": [">=3.0.0"]}, "matches no older version"),
        ({"upgrade_from": ["~1.0"]}, "is not a comparator"),
        ({"migrations": [{"rename": {"from": "PORT", "to": "GREETING"}}]}, "still a question"),
        (
            {"migrations": [{"rename": {"from": "X", "to": "NOPE"}}]},
            "not a question of this version",
        ),
        ({"migrations": [{"drop": "PORT"}]}, "must be a variable that is not a question"),
        ({"migrations": [{"set": {"THEME": "b"}}]}, "Choose one of: a"),
        ({"migrations": [{"set": {"NOPE": 1}}]}, "not a question of this version"),
        ({"migrations": [{"move": "X"}]}, "unknown migration"),
        ({"migrations": [{"drop": "X", "set": {"THEME": "a"}}]}, "exactly one key"),
    ],
)
def test_broken_upgrade_settings_are_reported(berth, expected):
    problems = rules.check_upgrades("2.0.0", berth, V2, {"1.0.0": V1}, {"2.0.0": []})
    assert any(expected in p for p in problems), problems
