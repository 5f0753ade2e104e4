"""The log reader's frames and runs: Docker's 8-byte framed stream into runs of whole
lines per stream, in log order, over any slicing of the body."""

import struct

from hypothesis import given
from hypothesis import strategies as st

from apps.hosts.engine.streams import MAX_LINE, _Demultiplexer, _LineSplitter, parse_line


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(payload)) + payload


def read(wire: bytes, cuts: list[int]) -> list[tuple[str, str, str]]:
    demux, splitter, lines, start = _Demultiplexer(), _LineSplitter(), [], 0
    for cut in [*sorted(set(cuts)), len(wire)]:
        runs = splitter.feed(demux.feed(wire[start:cut]))
        start = max(start, cut)
        for name, run in runs + (splitter.flush() if cut == len(wire) else []):
            assert run.endswith(b"\n")
            lines += [parse_line(name, raw) for raw in run.split(b"\n")[:-1]]
    return [(line.stream, line.ts, line.text) for line in lines]


@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_lines_of_both_streams_come_in_log_order(cuts):
    wire = b"".join(
        frame(kind, b"2026-12-06T21:29:19.%dZ %s %d\n" % (i, name, i))
        for i, (kind, name) in enumerate([(1, b"out"), (1, b"out"), (2, b"err"), (1, b"out")])
    )
    assert [text for _, _, text in read(wire, cuts)] == ["out 0", "out 1", "err 2", "out 3"]
    assert [stream for stream, _, _ in read(wire, cuts)][2] == "stderr"


def test_a_line_the_engine_cut_keeps_each_pieces_own_time():
    # The engine sends a line over 16 KiB as pieces, each framed with its own time and
    # without a newline but the last: each piece is a line, none holds the next's time.
    first = b"2026-12-06T21:29:19.1Z " + b"a" * MAX_LINE
    wire = frame(1, first) + frame(1, b"2026-12-06T21:29:19.2Z tail\n")
    lines = read(wire, [])
    assert [(ts, len(text)) for _, ts, text in lines] == [
        ("2026-12-06T21:29:19.1Z", MAX_LINE),
        ("2026-12-06T21:29:19.2Z", 4),
    ]
