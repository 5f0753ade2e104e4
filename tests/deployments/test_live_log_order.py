"""One order of log lines, `LogLine.sort_key`: the live service log and the log download
both merge containers' lines with `merge_lines`, which sorts by it."""

from __future__ import annotations

import pytest

from apps.hosts.engine.streams import LogLine, merge_lines

pytestmark = pytest.mark.usefixtures("live_settings")


def line(ts: str, text: str = "") -> LogLine:
    return LogLine("stdout", ts, text)


def test_a_shorter_fraction_is_not_a_later_time():
    # The engine trims trailing zeros: ".5" is 500 ms, before ".51".
    half, later = line("2026-01-01T10:00:00.5Z"), line("2026-01-01T10:00:00.51Z")
    assert half.ts > later.ts  # compared as written, the order would be wrong
    assert half.sort_key < later.sort_key


def test_a_whole_second_comes_before_its_fractions():
    whole, fraction = line("2026-01-01T10:00:00Z"), line("2026-01-01T10:00:00.000000001Z")
    assert whole.sort_key < fraction.sort_key
    assert fraction.sort_key < line("2026-01-01T10:00:01Z").sort_key


def test_lines_without_a_timestamp_come_first():
    assert line("").sort_key < line("2026-01-01T10:00:00Z").sort_key


def test_merge_interleaves_by_time_and_keeps_each_source_in_order():
    first = [line("2026-01-01T10:00:00.1Z", "a1"), line("2026-01-01T10:00:00.5Z", "a2")]
    first.append(line("2026-01-01T10:00:01Z", "a3"))
    second = [line("2026-01-01T10:00:00.25Z", "b1"), line("2026-01-01T10:00:00.5Z", "b2")]
    second.append(line("2026-01-01T10:00:00.75Z", "b3"))
    merged = [(index, entry.text) for index, entry in merge_lines([first, second])]
    # Equal times ("a2", "b2") come in the sources' order.
    assert merged == [(0, "a1"), (1, "b1"), (0, "a2"), (1, "b2"), (1, "b3"), (0, "a3")]


def test_merge_is_lazy():
    def endless():
        second = 0
        while True:
            yield line(f"2026-01-01T10:00:{second:02d}Z", str(second))
            second += 1

    merged = merge_lines([endless(), [line("2026-01-01T10:00:01.5Z", "other")]])
    texts = [next(merged)[1].text for _ in range(4)]
    assert texts == ["0", "1", "other", "2"]
