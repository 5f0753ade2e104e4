"""The catalog reads `${...}` and durations with compose's readers, so both agree.

The catalog once had its own `${` scanner (which did not skip `$$` inside braces) and its
own duration pattern (other units, no upper bound). These inputs are where they differed.
"""

from __future__ import annotations

import math

import pytest

from apps.catalog.questions import BerthConfigError, parse_berth_yml
from apps.catalog.validation import uses_in
from apps.compose import ComposeError
from apps.compose.errors import FieldError
from apps.compose.interpolate import interpolate, references
from apps.compose.values import duration


def catalog_names(text: str) -> list[str]:
    return [use.name for use in uses_in(text, "services.web.image")]


def looked_up(text: str) -> set[str]:
    """The variables interpolation looks up plainly (`$X`, `${X}`), with none set."""
    missing: set[str] = set()
    interpolate(text, {}, missing=missing)
    return missing


@pytest.mark.parametrize(
    ("text", "names", "expanded"),
    [
        ("$$", [], "$"),
        ("$${X}", [], "${X}"),
        ("$$X and $$$Y", ["Y"], "$X and $"),
        ("${X:-$${Y}}", ["X"], "${Y}"),
        # `$$` inside braces is skipped: the first `}` closes, the default is "${Y".
        # The old catalog scanner counted braces through `$${`, found no closing one and
        # saw no variable at all here.
        ("${X:-$${Y}", ["X"], "${Y"),
        ("${X:-a$$}b}", ["X"], "a$b}"),
        ("${X:-${Y:-$$Z}}", ["X", "Y"], "$Z"),
        ("${X-}${X_Y}", ["X", "X_Y"], ""),
    ],
)
def test_catalog_lists_the_variables_interpolation_reads(text, names, expanded):
    assert catalog_names(text) == names
    assert looked_up(text) <= set(names)
    assert interpolate(text, {}) == expanded


def test_references_carry_operator_and_word():
    ref = next(references("${DB:-$${PORT}}"))
    assert (ref.name, ref.operator, ref.word) == ("DB", ":-", "$${PORT")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("5$ and ${X}", ["X"]),  # a lone `$` is text to the listing, an error to interpolation
        ("${1X} ${Y}", ["Y"]),
        ("${X!x} $Y", ["X", "Y"]),
        ("${X:-${Y}", []),  # unclosed: nothing after it is read
    ],
)
def test_malformed_text_is_listed_leniently_and_refused_by_interpolation(text, names):
    assert catalog_names(text) == names
    with pytest.raises(ComposeError):
        interpolate(text, {"X": "x", "Y": "y"})


def health_interval_problems(value: str) -> list[str]:
    text = f"services: {{web: {{health_check: {{interval: '{value}'}}}}}}"
    try:
        parse_berth_yml(text, source="app/1.0.0/berth.yml")
    except BerthConfigError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1h30m", 5400), ("500ms", 0.5), ("1m30s", 90), ("1.5s", 1.5), ("100us", 1e-4)],
)
def test_durations_berth_yml_accepts_read_the_same_as_in_compose(value, seconds):
    assert health_interval_problems(value) == []
    assert math.isclose(duration(value, strict=True), seconds)
    assert math.isclose(duration(value), seconds)


@pytest.mark.parametrize("value", ["10ns", "100µs", "0", ".5s", "1.s", " 5s", "30"])
def test_berth_yml_keeps_the_compose_specification_spelling(value):
    """Go's extra spellings stay a compose-file convenience; berth.yml refuses them, as
    it always did (the stricter of the two readers)."""
    assert health_interval_problems(value)
    with pytest.raises(FieldError):
        duration(value, strict=True)


def test_durations_past_seven_days_are_refused_everywhere():
    """The catalog had no upper bound; compose refuses more than 7 days. The stricter wins."""
    assert any("not a duration" in p for p in health_interval_problems("200h"))
    for strict in (False, True):
        with pytest.raises(FieldError, match="too long"):
            duration("200h", strict=strict)
