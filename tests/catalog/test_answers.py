"""Answers: validation of every type and rule, show_if, generated passwords, migrations."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.catalog.answers import (
    interpolation_values,
    migrate_answers,
    new_questions,
    resolve_answers,
)
from apps.catalog.questions import parse_berth_yml
from apps.catalog.versions import can_upgrade

V1 = parse_berth_yml(
    """
questions:
  - {variable: NAME, label: Name, type: string, default: web, min: 2, max: 10, pattern: "[a-z]+"}
  - {variable: COUNT, label: Count, type: int, default: 2, min: 1, max: 5}
  - {variable: DEBUG, label: Debug, type: bool}
  - {variable: SIZE, label: Size, type: enum, options: [s, m, l], default: m}
  - {variable: DB_PASSWORD, label: DB password, type: password}
  - {variable: API_KEY, label: API key, type: secret}
  - {variable: DOMAIN, label: Domain, type: hostname}
  - {variable: MOTD, label: Message, type: multiline}
  - {variable: LEVEL, label: Level, type: string, required: true, show_if: {DEBUG: true}}
  - {variable: TOKEN, label: Token, type: secret, required: true}
""",
    version="1.0.0",
)


def errors(answers, previous=None, version=V1) -> dict:
    with pytest.raises(ValidationError) as exc:
        resolve_answers(version, answers, previous)
    return {k: v[0] for k, v in exc.value.message_dict.items()}


def test_defaults_generation_and_normalization():
    result = resolve_answers(
        V1, {"TOKEN": "t", "DOMAIN": "App.Example.ORG", "MOTD": "a\r\nb", "COUNT": "4"}
    )
    assert result["NAME"] == "web" and result["SIZE"] == "m"
    assert result["COUNT"] == 4 and result["DEBUG"] is False
    assert result["DOMAIN"] == "app.example.org"
    assert result["MOTD"] == "a\nb"
    assert len(result["DB_PASSWORD"]) == 32 and result["DB_PASSWORD"].isalnum()
    assert result["API_KEY"] == ""
    assert "LEVEL" not in result  # hidden by show_if, so not required either


@pytest.mark.parametrize(
    "answers, variable, message",
    [
        ({"COUNT": "x"}, "COUNT", "Enter a whole number."),
        ({"COUNT": 1.5}, "COUNT", "Expected a whole number."),
        ({"COUNT": 0}, "COUNT", "Must be at least 1."),
        ({"COUNT": "9"}, "COUNT", "Must be at most 5."),
        ({"NAME": "a"}, "NAME", "Must be at least 2 characters."),
        ({"NAME": "abcdefghijk"}, "NAME", "Must be at most 10 characters."),
        ({"NAME": "ab1"}, "NAME", "Must match the pattern [a-z]+."),
        ({"NAME": "ab\ncd"}, "NAME", "Must be a single line of text."),
        ({"NAME": 5}, "NAME", "Expected a string."),
        ({"SIZE": "xl"}, "SIZE", "Choose one of: s, m, l."),
        ({"DEBUG": "maybe"}, "DEBUG", "Enter true or false."),
        ({"DEBUG": [1]}, "DEBUG", "Expected true or false."),
        ({"DOMAIN": "not a host"}, "DOMAIN", "Enter a valid hostname"),
        ({"DOMAIN": "10.0.0.1"}, "DOMAIN", "Enter a valid hostname"),
        ({"DOMAIN": "-bad.example"}, "DOMAIN", "Enter a valid hostname"),
        ({"MOTD": "a\x07b"}, "MOTD", "Must not contain control characters"),
        ({"TOKEN": ""}, "TOKEN", "This answer is required."),
        ({"DEBUG": True}, "LEVEL", "This answer is required."),
        ({"SURPRISE": "1"}, "SURPRISE", "Not a question of this template version."),
    ],
)
def test_each_rule_has_its_message(answers, variable, message):
    found = errors({"TOKEN": "t", **answers})
    assert found[variable].startswith(message), found


def test_all_problems_reported_at_once():
    found = errors({"COUNT": "x", "SIZE": "xl", "JUNK": 1})
    assert set(found) == {"COUNT", "SIZE", "JUNK", "TOKEN"}


def test_bool_words_and_show_if_shown():
    result = resolve_answers(V1, {"TOKEN": "t", "DEBUG": "Yes", "LEVEL": "warn"})
    assert result["DEBUG"] is True and result["LEVEL"] == "warn"


def test_generated_password_is_kept_never_regenerated():
    first = resolve_answers(V1, {"TOKEN": "t"})
    again = resolve_answers(V1, {"TOKEN": "t", "DB_PASSWORD": ""}, previous=first)
    absent = resolve_answers(V1, {}, previous=first)
    assert again["DB_PASSWORD"] == first["DB_PASSWORD"] == absent["DB_PASSWORD"]
    assert absent["TOKEN"] == "t"  # a blank secret keeps the stored one
    changed = resolve_answers(V1, {"DB_PASSWORD": "mine"}, previous=first)
    assert changed["DB_PASSWORD"] == "mine"


def test_hidden_answer_kept_but_unset_for_interpolation():
    stored = resolve_answers(V1, {"TOKEN": "t", "DEBUG": True, "LEVEL": "warn"})
    hidden = resolve_answers(V1, {"DEBUG": False}, previous=stored)
    assert hidden["LEVEL"] == "warn"
    assert "LEVEL" not in interpolation_values(V1, hidden)


def test_answers_must_be_an_object():
    with pytest.raises(ValidationError):
        resolve_answers(V1, ["NAME"])


# --- migrations and upgrades -----------------------------------------------------------------

A1 = parse_berth_yml(
    "questions:\n"
    "  - {variable: MESSAGE, label: M, type: string}\n"
    "  - {variable: PW, label: P, type: password}\n"
    "  - {variable: OLD, label: O, type: string}\n",
    version="1.0.0",
)
A2 = parse_berth_yml(
    "questions:\n"
    "  - {variable: GREETING, label: G, type: string}\n"
    "  - {variable: PW, label: P, type: password}\n"
    "  - {variable: OLD, label: O, type: string}\n"
    "upgrade_from: ['1.0.0']\n"
    "migrations: [{rename: {from: MESSAGE, to: GREETING}}]\n",
    version="1.1.0",
)
A3 = parse_berth_yml(
    "questions:\n"
    "  - {variable: GREETING, label: G, type: string}\n"
    "  - {variable: PW, label: P, type: password}\n"
    "  - {variable: THEME, label: T, type: enum, options: [light, dark]}\n"
    "  - {variable: COLOR, label: C, type: string, required: true}\n"
    "upgrade_from: ['>=1.0.0 <2.0.0']\n"
    "migrations: [{drop: OLD}, {set: {THEME: dark}}]\n",
    version="2.0.0",
)


def test_migrations_of_every_version_in_between_apply_in_order():
    stored = {"MESSAGE": "hi", "PW": "secret", "OLD": "x", "STRAY": "y"}
    carried = migrate_answers(A1, A3, stored, versions=[A1, A2, A3])
    assert carried == {"GREETING": "hi", "PW": "secret", "THEME": "dark"}
    asked = new_questions(A1, A3, stored, versions=[A1, A2, A3])
    assert [q.variable for q in asked] == ["COLOR"]
    final = resolve_answers(A3, {**carried, "COLOR": "red"}, previous=carried)
    assert final["PW"] == "secret"


def test_rename_replaces_an_existing_answer():
    carried = migrate_answers(A1, A2, {"MESSAGE": "old", "GREETING": "new"}, versions=[A1, A2])
    assert carried["GREETING"] == "old"


def test_can_upgrade_follows_upgrade_from():
    assert can_upgrade(A1, A2) and can_upgrade(A1, A3) and can_upgrade(A2, A3)
    assert not can_upgrade(A2, A1)  # older
    assert not can_upgrade(A3, A3)
    no_rule = parse_berth_yml("", version="3.0.0")
    assert not can_upgrade(A3, no_rule)  # no upgrade_from: no upgrade into it
