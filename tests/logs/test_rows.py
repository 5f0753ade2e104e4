"""The collector's rows, made from the engine's raw lines a run at a time (plain data).

Each run is checked against a line-by-line reading of the same bytes (what the collector
did before: decode with replacement, CRs at the end dropped, the time taken off, NUL
replaced, microseconds cut), and the bulk path against the line-by-line one.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from apps.logs import store
from apps.logs.collector import Cursor
from apps.logs.models import LogSource
from apps.logs.rows import NS, RowMaker, split_lines, storable

SECOND = 1_796_590_000  # 2026-12-06
SOURCE = LogSource(
    pk=7, tenant_id=3, environment_id=5, stack="shop", service="web\tx", container="c\\1"
)


def engine_time(ns: int) -> bytes:
    """As the engine writes it: nanoseconds, trailing zeros trimmed."""
    head = datetime.fromtimestamp(ns // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ns % NS:09d}".rstrip("0")
    return f"{head}{'.' + fraction if fraction else ''}Z".encode()


def parse_rows(text: bytes) -> list[tuple]:
    """COPY text -> (stream, microseconds, text) per row, checking the leading columns."""
    rows = []
    for line in text.split(b"\n")[:-1]:
        fields = [store.unescape(field).decode() for field in line.split(b"\t")]
        assert fields[:6] == ["7", "3", "5", "shop", "web\tx", "c\\1"]
        when = datetime.fromisoformat(fields[7])
        micros = int(when.timestamp()) * 1_000_000 + when.microsecond
        rows.append((fields[6], micros, fields[8]))
    return rows


def line_by_line(stream: str, run: bytes, last_ns: int) -> list[tuple]:
    """The reference reading of a run of raw lines."""
    rows = []
    for raw in run.split(b"\n")[:-1]:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        stamp, sep, rest = text.partition(" ")
        if sep and stamp.endswith("Z") and stamp[4:5] == "-" and stamp[10:11] == "T":
            head, _, fraction = stamp[:-1].partition(".")
            seconds = int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
            last_ns, text = seconds * NS + int(fraction.ljust(9, "0")[:9] or 0), rest
        rows.append((stream, last_ns // 1000, text.replace("\x00", "\ufffd")))
    return rows


texts = st.one_of(
    st.text(st.characters(blacklist_characters="\n", blacklist_categories=["Cs"]), max_size=40),
    st.sampled_from(["a\tb", "back\\slash", "cr\r", "crs\r\r", "mid\rcr", "nul\x00", ""]),
)
lines = st.tuples(st.integers(0, 5 * NS), st.booleans(), texts, st.booleans())


def make_run(spec: list[tuple]) -> bytes:
    """Lines from (offset ns, with a time, text, a broken UTF-8 byte) specs."""
    out = []
    for offset, timed, text, broken in spec:
        body = text.encode() + (b"\xe2\x82" if broken else b"")
        out.append((engine_time(SECOND * NS + offset) + b" " if timed else b"") + body + b"\n")
    return b"".join(out)


@given(spec=st.lists(lines, min_size=1, max_size=30), stream=st.sampled_from(["stdout", "stderr"]))
def test_a_run_gives_the_rows_a_line_by_line_reading_gives(spec, stream):
    run = make_run(spec)
    maker = RowMaker(SOURCE, Cursor(ns=SECOND * NS))
    text, count = maker.rows(stream, run)
    expected = line_by_line(stream, run, SECOND * NS)
    assert parse_rows(text) == expected and count == len(expected)
    timed = [SECOND * NS + offset for offset, has_time, _, _ in spec if has_time]
    assert maker.cursor.ns == max([SECOND * NS, *timed])


@given(spec=st.lists(lines, min_size=1, max_size=30))
def test_the_bulk_path_and_the_line_by_line_path_agree(spec):
    run = make_run([(offset, True, text, broken) for offset, _, text, broken in spec])
    bulk, single = RowMaker(SOURCE, Cursor()), RowMaker(SOURCE, Cursor())
    assert bulk.rows("stdout", run) == single._slow("stdout", storable(run))
    assert (bulk.cursor.ns, bulk.last_ns) == (single.cursor.ns, single.last_ns)


def test_times_are_cut_to_microseconds_never_rounded():
    run = b"2026-12-06T21:29:19.9999999Z late\n2026-12-06T21:29:19Z whole\n"
    rows = parse_rows(RowMaker(SOURCE, Cursor()).rows("stdout", run)[0])
    assert [(micros % 1_000_000, text) for _, micros, text in rows] == [
        (999_999, "late"),
        (0, "whole"),
    ]


def test_the_cursor_moves_to_the_largest_time_not_the_last():
    run = b"2026-12-06T21:29:19.5Z b\n2026-12-06T21:29:19.49Z a\n2026-12-06T21:29:19Z c\n"
    maker = RowMaker(SOURCE, Cursor())
    maker.rows("stdout", run)
    assert maker.cursor.ns % NS == 500_000_000
    assert maker.last_ns % NS == 0  # a piece without a time would take the last line's


def micros(stamp: str) -> int:
    when = datetime.fromisoformat(stamp)
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def test_lines_already_stored_in_the_window_are_dropped_as_a_multiset():
    # What Cursor.resume reads back: "same" stored twice, "other" once.
    seen = Counter(
        {
            ("stdout", micros("2026-12-06T21:29:19.000001Z"), b"same"): 2,
            ("stdout", micros("2026-12-06T21:29:19.000002Z"), b"other"): 1,
        }
    )
    last = micros("2026-12-06T21:29:19.000002Z")
    cursor = Cursor(ns=last * 1000, seen=seen, upto_us=last)
    fetched = (
        b"2026-12-06T21:29:19.000001Z same\n" * 3  # two stored, one new
        + b"2026-12-06T21:29:19.000002Z other\n"  # stored
        + b"2026-12-06T21:29:19.000003Z next\n"  # new
    )
    text, count = RowMaker(SOURCE, cursor).rows("stdout", fetched)
    assert [row[2] for row in parse_rows(text)] == ["same", "next"] and count == 2
    assert cursor.ns == micros("2026-12-06T21:29:19.000003Z") * 1000


def test_split_lines_cuts_at_a_line():
    run = b"a\nb\nc\n"
    assert split_lines(run, 2) == (b"a\nb\n", b"c\n")
    assert split_lines(run, 3) == (run, b"")
    assert split_lines(run, 9) == (run, b"")
    assert split_lines(run, 0) == (b"", run)


def test_a_tail_window_keeps_since_to_until_and_knows_whether_it_reaches_back():
    from apps.logs.collector import TailWindow

    def at(seconds: float) -> bytes:
        whole, frac = divmod(round(seconds * 1e9), 10**9)
        return f"1970-01-01T00:00:{whole:02d}.{frac:09d}Z".encode()

    runs = [
        [("stdout", at(10) + b" a\n" + at(12) + b" b\n" + b"piece of b\n")],
        [("stderr", at(12.5) + b" c\n"), ("stdout", at(13) + b" d\n" + b"piece of d\n")],
    ]
    second = 10**9
    window = TailWindow(runs, 12 * second, int(12.5 * second), 11 * second, tty=False)
    assert window.reaches_back  # its first line (10 s) is older than what is known (11 s)
    assert window.lines == 6
    assert list(window.runs()) == [
        [("stdout", at(12) + b" b\npiece of b\n")],
        [("stderr", at(12.5) + b" c\n")],  # inclusive at both ends; d and its piece after
    ]
    late = TailWindow(runs, int(10.5 * second), 20 * second, 9 * second, tty=False)
    assert not late.reaches_back  # a line before it may not be stored yet
    empty = TailWindow([], 0, second, second, tty=False)
    assert list(empty.runs()) == [] and empty.lines == 0
