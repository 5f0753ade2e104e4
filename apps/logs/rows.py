"""The engine's raw log lines made into the store's rows (COPY text), a run at a time.

A flooding container sends tens of thousands of lines a second, and a Python object per
line (a LogLine, a datetime, a row tuple that psycopg then dumps field by field) cost
the collector process about 10 us a line, more than the database's share on a 2-core
machine. The bytes need almost nothing done to them, so a run of raw lines (one stream,
"<RFC 3339 time> <text>\\n" each, from `LogStream.runs`) becomes COPY text with a few
operations over the whole run, each a C loop:

- the text is made storable (invalid UTF-8 replaced, trailing CRs dropped, NUL
  replaced: PostgreSQL text holds none) and escaped for COPY;
- one regex `split` takes every line's time apart; list slice assignments drop the
  digits past microseconds (cut, not rounded, as the cursor compares them) and put a
  tab after the time; one `replace` puts the row's constant columns (source, tenant,
  environment, names, stream) at the start of every line;
- the cursor moves to the run's largest time, found by `max` over the (second,
  fraction) pairs: fixed-width seconds, then fractions written without trailing zeros,
  compare as strings in time order.

A run that the fast path cannot take goes line by line (`_slow`), to the same result:
a line without a time of its own (a piece of an over-long line takes the previous
line's time), a time the regex does not take, or a run reaching back into the cursor's
window, where lines already stored must be recognised and dropped (`Cursor.admit`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apps.logs import store

if TYPE_CHECKING:
    from apps.logs.collector import Cursor
    from apps.logs.models import LogSource

NS = 1_000_000_000
STREAMS = ("stdout", "stderr")

# The engine's time at the start of a line: seconds, up to 6 digits of fraction (what
# the store keeps), the rest of the fraction, then "Z" and the space before the text.
# Every group takes part in every match (`split` gives bytes, never None).
TIME = re.compile(
    rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)((?:\.\d{1,6})?)((?:(?<=\.\d{6})\d+)?)(Z )",
    re.MULTILINE,
)
GROUPS = 4
_CR_AT_END = re.compile(rb"\r+\n")
_REPLACEMENT = "\ufffd".encode()
_seconds_cache: dict[bytes, int | None] = {}


def epoch_seconds(head: bytes) -> int | None:
    """A time's "YYYY-MM-DDTHH:MM:SS" (UTC) -> seconds since the epoch; None when it is
    not a time. Most lines of a pass share their second: each is parsed once."""
    seconds = _seconds_cache.get(head, -1)
    if seconds != -1:
        return seconds
    try:
        seconds = int(datetime.fromisoformat(head.decode()).replace(tzinfo=UTC).timestamp())
    except ValueError:
        seconds = None
    if len(_seconds_cache) > 4096:
        _seconds_cache.clear()
    _seconds_cache[head] = seconds
    return seconds


def time_ns(head: bytes, micros: bytes, rest: bytes) -> int:
    """Nanoseconds of a TIME match whose head is a time (`epoch_seconds`)."""
    fraction = (micros[1:] + rest).ljust(9, b"0")[:9] if micros else b"0"
    return epoch_seconds(head) * NS + int(fraction)


def time_text(ns: int) -> bytes:
    """Nanoseconds -> the COPY text of the store's time (microseconds, cut)."""
    when = datetime.fromtimestamp(ns // NS, tz=UTC).replace(microsecond=ns % NS // 1000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


def storable(run: bytes) -> bytes:
    """Raw lines as PostgreSQL can store them, escaped for COPY, newlines kept."""
    if not run.isascii():
        try:
            run.decode()
        except UnicodeDecodeError:
            run = run.decode(errors="replace").encode()
    if b"\r" in run:
        run = _CR_AT_END.sub(b"\n", run)
    if b"\x00" in run:
        run = run.replace(b"\x00", _REPLACEMENT)
    return store.escape(run, lines=True)


def split_lines(run: bytes, count: int) -> tuple[bytes, bytes]:
    """The first `count` lines of `run`, and the rest."""
    if count <= 0:
        return b"", run
    if run.count(b"\n") <= count:
        return run, b""
    parts = run.split(b"\n", count)
    if len(parts) <= count or not parts[count]:
        return run, b""
    return b"\n".join(parts[:count]) + b"\n", parts[count]


class RowMaker:
    """Makes one container's runs of raw lines into COPY rows, admitting each line
    through the pass's cursor (which it moves)."""

    def __init__(self, source: LogSource, cursor: Cursor) -> None:
        self.cursor = cursor
        self.last_ns = cursor.ns  # the previous line's time, for a line without one
        self.prefix = {
            stream: store.row_prefix(
                source.pk,
                source.tenant_id,
                source.environment_id,
                source.stack,
                source.service,
                source.container,
                stream,
            )
            for stream in STREAMS
        }

    def rows(self, stream: str, run: bytes) -> tuple[bytes, int]:
        """COPY text of the run's lines the cursor admits, and how many there are."""
        text = storable(run)
        lines = text.count(b"\n")
        # ["", second, micros, rest, "Z ", text, second, ...]: a line's text runs to
        # the next line's time, so 4 groups and a text per line when every line has one.
        parts = TIME.split(text)
        if len(parts) != lines * (GROUPS + 1) + 1 or not self._fast(parts):
            return self._slow(stream, text)
        parts[3::5] = [b""] * lines  # the store keeps microseconds
        parts[4::5] = [b"Z\t"] * lines
        prefix = self.prefix[stream]
        rows = prefix + b"".join(parts).replace(b"\n", b"\n" + prefix)
        return rows[: -len(prefix)], lines

    def _fast(self, parts: list[bytes]) -> bool:
        """Whether the run's lines are all new, each with a valid time: then the cursor
        moves to the largest one."""
        seconds, micros, rest = parts[1::5], parts[2::5], parts[3::5]
        if any(epoch_seconds(head) is None for head in set(seconds)):
            return False
        times = list(zip(seconds, micros, rest, strict=True))
        if self.cursor.upto_us >= 0 and time_ns(*min(times)) // 1000 <= self.cursor.upto_us:
            return False  # may hold lines stored already: counted one by one
        self.cursor.ns = max(self.cursor.ns, time_ns(*max(times)))
        self.last_ns = time_ns(seconds[-1], micros[-1], rest[-1])
        return True

    def _slow(self, stream: str, text: bytes) -> tuple[bytes, int]:
        rows, prefix = [], self.prefix[stream]
        for line in text.split(b"\n")[:-1]:
            found = TIME.match(line)
            if found and epoch_seconds(found.group(1)) is not None:
                head, micros, rest, _ = found.groups()
                ns, body = time_ns(head, micros, rest), line[found.end() :]
                when = head + micros + b"Z"
            else:
                ns, body, when = self.last_ns, line, time_text(self.last_ns)
            self.last_ns = ns
            if self.cursor.admit(ns, (stream, ns // 1000, body)):
                rows.append(prefix + when + b"\t" + body + b"\n")
        return b"".join(rows), len(rows)
