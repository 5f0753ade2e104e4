"""The log reader undoes HTTP chunked encoding itself, over any slicing of the body."""

from hypothesis import given
from hypothesis import strategies as st

from apps.hosts.engine.streams import _ChunkedDecoder


def encode(parts: list[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts if part)
    return body + b"0\r\n\r\n"


@given(
    parts=st.lists(st.binary(min_size=1, max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=30),
)
def test_any_slicing_gives_back_the_payload(parts, cuts):
    wire = encode(parts)
    decoder, out, start = _ChunkedDecoder(), bytearray(), 0
    for cut in sorted(set(cuts)) + [len(wire)]:
        out += decoder.feed(wire[start:cut])
        start = max(start, cut)
    assert bytes(out) == b"".join(parts)
    assert decoder.done


def test_chunk_extensions_are_ignored():
    decoder = _ChunkedDecoder()
    assert decoder.feed(b"5;name=value\r\nhello\r\n0\r\n\r\n") == b"hello"
    assert decoder.done
