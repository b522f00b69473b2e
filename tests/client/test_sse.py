"""The SSE decoder, line by line, against the WHATWG rules."""

from __future__ import annotations

import pytest

from sandlot_client import ServerSentEvent, SSEDecoder


def decode(text: str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [decoder.decode(line) for line in text.splitlines()]
    return [event for event in events if event is not None]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ("event: start\ndata: {}\nid: 0\n\n", [ServerSentEvent("start", "{}", "0")]),
        ("data: a\ndata: b\n\n", [ServerSentEvent("message", "a\nb")]),
        ("data:no-space\n\n", [ServerSentEvent("message", "no-space")]),
        ("data:  two spaces\n\n", [ServerSentEvent("message", " two spaces")]),
        (": ping\n\ndata: x\n\n", [ServerSentEvent("message", "x")]),
        ("event: lonely\n\ndata: x\n\n", [ServerSentEvent("message", "x")]),
        ("data: x\nretry: 3000\n\n", [ServerSentEvent("message", "x", retry=3000)]),
        ("data: x\nretry: soon\n\n", [ServerSentEvent("message", "x")]),
        (
            "id: 7\ndata: a\n\ndata: b\n\n",
            [ServerSentEvent(data="a", id="7"), ServerSentEvent(data="b", id="7")],
        ),
        ("data: cut off", []),
        ("data\n\n", [ServerSentEvent("message", "")]),
        ("bogus: field\ndata: x\n\n", [ServerSentEvent("message", "x")]),
    ],
    ids=[
        "named-event",
        "multi-line-data",
        "no-space-after-colon",
        "only-one-space-stripped",
        "comments-ignored",
        "event-without-data-dropped",
        "retry",
        "retry-not-a-number",
        "id-persists",
        "unterminated-event-not-sent",
        "field-without-colon",
        "unknown-field-ignored",
    ],
)
def test_decoder(stream: str, expected: list[ServerSentEvent]) -> None:
    assert decode(stream) == expected


def test_crlf_split_lines_decode_the_same() -> None:
    # httpx's iter_lines splits \r\n, \r and \n alike; so does str.splitlines.
    assert decode("event: end\r\ndata: {}\r\n\r\n") == [ServerSentEvent("end", "{}")]
