"""sandbox/egress/messages.py: an EgressRequest is normalised and validated."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.egress import (
    EgressRequest,
)


def test_request_normalises() -> None:
    request = EgressRequest("post", "http://x/", [("A", "b")], bytearray(b"hi"), 0)  # type: ignore[arg-type]
    assert request.method == "POST"
    assert request.headers == (("A", "b"),)
    assert request.body == b"hi"
    assert request.timeout_ms is None


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        pytest.param({"method": "GE T"}, "method", id="method-space"),
        pytest.param({"method": ""}, "method", id="method-empty"),
        pytest.param({"method": "GET\r\nX: y"}, "method", id="method-crlf"),
        pytest.param({"method": "CONNECT"}, "CONNECT", id="method-connect"),
        pytest.param({"headers": (("X-A\r\n", "v"),)}, r"headers\[0\]", id="name-crlf"),
        pytest.param({"headers": (("X:A", "v"),)}, r"headers\[0\]", id="name-colon"),
        pytest.param({"headers": (("", "v"),)}, r"headers\[0\]", id="name-empty"),
        pytest.param({"headers": (("X-A", "v\r\nInjected: 1"),)}, r"headers\[0\]", id="value-crlf"),
        pytest.param({"headers": (("X-A", "v\n"),)}, r"headers\[0\]", id="value-lf"),
        pytest.param({"headers": (("X-A", "v\x00"),)}, r"headers\[0\]", id="value-nul"),
        pytest.param({"headers": (("X-A", "\u2603"),)}, r"headers\[0\]", id="value-non-latin1"),
        pytest.param({"headers": (("X-A",),)}, r"headers\[0\]", id="not-a-pair"),
        pytest.param({"body": "text"}, "body", id="body-str"),
        pytest.param({"timeout_ms": -1}, "timeout_ms", id="timeout-negative"),
    ],
)
def test_request_validation(kwargs: dict[str, Any], field_name: str) -> None:
    fields: dict[str, Any] = {"method": "GET", "url": "http://x/", "headers": (), "body": b""}
    with pytest.raises(ValueError, match=field_name):
        EgressRequest(**(fields | kwargs))
