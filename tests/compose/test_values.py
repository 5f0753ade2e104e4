"""Strict scalar readers: durations, sizes, booleans and numbers, with clear errors."""

import math

import pytest

from apps.compose.errors import FieldError
from apps.compose.limits import DEFAULT_LIMITS
from apps.compose.values import boolean, duration, integer, number, scalar_text, size, text


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1m30s", 90),
        ("10s", 10),
        ("500ms", 0.5),
        ("1h", 3600),
        ("1.5s", 1.5),
        ("2h3m4s", 7384),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("10ns", 1e-8),
        (0, 0),
        ("0", 0),
        (" 5s ", 5),
    ],
)
def test_durations(value, seconds):
    assert math.isclose(duration(value), seconds)


@pytest.mark.parametrize(
    "value", ["30", 30, 1.5, "1x", "s", "", "1m 30s", "-5s", "1d", True, None, [], "5s5", "8d"]
)
def test_bad_durations(value):
    with pytest.raises(FieldError):
        duration(value)


def test_duration_error_says_what_to_write():
    with pytest.raises(FieldError, match=r"use a unit, like '30s'"):
        duration("30")
    with pytest.raises(FieldError, match="too long"):
        duration("200h")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512M", 512 * 2**20),
        ("512m", 512 * 2**20),
        ("512MB", 512 * 2**20),
        ("512MiB", 512 * 2**20),
        ("1g", 2**30),
        ("1.5G", 3 * 2**29),
        ("64k", 65536),
        ("100", 100),
        (100, 100),
        ("100b", 100),
        ("2 GB", 2 * 2**30),
        ("1t", 2**40),
    ],
)
def test_sizes(value, expected):
    assert size(value) == expected


@pytest.mark.parametrize(
    "value", ["", "M", "-1m", "0", 0, "1x", "1.2.3m", True, None, 1.5, "1e3", "9" * 30, 2**80]
)
def test_bad_sizes(value):
    with pytest.raises(FieldError):
        size(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("Yes", True),
        ("on", True),
        ("y", True),
        ("FALSE", False),
        ("no", False),
        ("off", False),
        ("n", False),
    ],
)
def test_booleans(value, expected):
    assert boolean(value) is expected


@pytest.mark.parametrize("value", ["1", "0", 1, 0, "", None, "maybe", [], "truee"])
def test_bad_booleans(value):
    with pytest.raises(FieldError, match="expected true or false"):
        boolean(value)


def test_integers():
    assert integer("3", low=0, high=5) == 3
    assert integer(5, low=0, high=5) == 5
    for bad in (6, -1, "x", True, 1.5, "1.0", None, "9" * 40):
        with pytest.raises(FieldError):
            integer(bad, low=0, high=5)


def test_numbers():
    assert number("0.5", low=0, high=4) == 0.5
    assert number(2, low=0, high=4) == 2.0
    assert number(0, low=0, high=1, zero_ok=True) == 0.0
    for bad in (0, 5, "nan", float("nan"), float("inf"), True, "1e3", "x", None):
        with pytest.raises(FieldError):
            number(bad, low=0, high=4)


def test_text_limits():
    assert text("x", DEFAULT_LIMITS) == "x"
    with pytest.raises(FieldError, match="too long"):
        text("x" * (DEFAULT_LIMITS.max_string + 1), DEFAULT_LIMITS)
    with pytest.raises(FieldError, match="NUL"):
        text("a\x00b", DEFAULT_LIMITS)
    with pytest.raises(FieldError, match="expected a string, got a number"):
        text(5, DEFAULT_LIMITS)


def test_scalar_text():
    assert scalar_text(True, DEFAULT_LIMITS) == "true"
    assert scalar_text(5, DEFAULT_LIMITS) == "5"
    assert scalar_text(1.5, DEFAULT_LIMITS) == "1.5"
    for bad in (float("nan"), 10**30, [], {}, None):
        with pytest.raises(FieldError):
            scalar_text(bad, DEFAULT_LIMITS)
