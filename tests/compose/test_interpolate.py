"""Compose variable interpolation: every operator, escaping, errors, and where it applies."""

import pytest

from apps.compose import ComposeError
from apps.compose.interpolate import interpolate

ENV = {"SET": "value", "EMPTY": "", "OTHER": "other"}


def expand(text: str, env=None) -> str:
    return interpolate(text, ENV if env is None else env)


def error(tree, env=None) -> str:
    with pytest.raises(ComposeError) as info:
        interpolate(tree, ENV if env is None else env)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$SET", "value"),
        ("${SET}", "value"),
        ("pre-${SET}-post", "pre-value-post"),
        ("$SET.txt", "value.txt"),
        ("$UNSET", ""),
        ("${UNSET}", ""),
        ("${SET:-d}", "value"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${SET-d}", "value"),
        ("${UNSET-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${UNSET:+alt}", ""),
        ("${SET+alt}", "alt"),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${SET:?msg}", "value"),
        ("${EMPTY?msg}", ""),
        ("$$", "$"),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("a$$b$$", "a$b$"),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-a-${OTHER}-b}", "a-other-b"),
        ("${UNSET:-$${X}}", "${X}"),
        ("${UNSET:-}", ""),
        ("${UNSET:-with spaces and : colons}", "with spaces and : colons"),
        ("no dollars", "no dollars"),
    ],
)
def test_operators(text, expected):
    assert expand(text) == expected


def test_substituted_values_are_not_interpolated_again():
    assert expand("${X}", {"X": "$SET ${SET}"}) == "$SET ${SET}"


def test_default_only_evaluated_when_used():
    assert expand("${SET:-${MISSING:?never}}") == "value"
    assert expand("${UNSET:+${MISSING:?never}}") == ""


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("${MISSING:?set a password}", "required variable 'MISSING' is missing a value: set a"),
        ("${EMPTY:?cannot be empty}", "required variable 'EMPTY'"),
        ("${MISSING?}", "required variable 'MISSING' is missing a value"),
        ("${MISSING:?need ${OTHER}}", "need other"),
    ],
)
def test_required_variables(text, needle):
    assert needle in error({"services": {"db": {"image": text}}})


def test_required_error_names_service_and_key():
    message = error({"services": {"db": {"environment": {"PW": "${PW:?set it}"}}}})
    assert message.startswith("service 'db': environment.PW: required variable 'PW'")


@pytest.mark.parametrize(
    "text", ["$", "a $ b", "$1", "${", "${}", "${1X}", "${SET", "${SET:x}", "${SET:-x", "${A B}"]
)
def test_invalid_syntax(text):
    message = error(text)
    assert any(word in message for word in ("interpolation", "variable name", "unclosed"))


def test_all_problems_are_collected():
    with pytest.raises(ComposeError) as info:
        interpolate({"a": "${X:?x}", "b": ["${Y:?y}"], "c": "ok"}, {})
    assert [p.path for p in info.value.problems] == ["a", "b[0]"]


def test_keys_are_not_interpolated():
    assert interpolate({"${SET}": "${SET}"}, ENV) == {"${SET}": "value"}


def test_non_strings_untouched_and_copy_returned():
    tree = {"a": [1, 2.5, True, None, {"b": "$SET"}]}
    result = interpolate(tree, ENV)
    assert result == {"a": [1, 2.5, True, None, {"b": "value"}]}
    assert tree["a"][4]["b"] == "$SET"


def test_typed_variables_become_compose_strings():
    assert interpolate("${A}-${B}-${C}", {"A": True, "B": 3, "C": False}) == "true-3-false"


def test_none_variable_counts_as_unset():
    assert interpolate("${A-unset}", {"A": None}) == "unset"


def test_missing_names_collected():
    missing: set[str] = set()
    interpolate(["$A", "${B}", "${C:-x}", "$SET"], ENV | {}, missing=missing)
    assert missing == {"A", "B"}


def test_nesting_is_bounded():
    deep = "${U:-" * 20 + "x" + "}" * 20
    assert "nested deeper" in error(deep)


def test_large_values_are_fine():
    assert interpolate("${BIG}", {"BIG": "x" * 100_000}) == "x" * 100_000


def test_total_expansion_is_bounded():
    tree = {"a": ["${BIG}"] * 300}
    with pytest.raises(ComposeError, match="too large in total"):
        interpolate(tree, {"BIG": "x" * 16384})
    assert len(interpolate(tree, {"BIG": "x" * 1000})["a"]) == 300
