"""``urllib.request.urlopen`` over ``sandlot.fetch``: the same egress gate, any engine."""

from __future__ import annotations

import http.client
import io
import urllib.error
import urllib.request
import urllib.response
from email.message import Message
from http import HTTPStatus
from typing import Any

import sandlot


def install() -> None:
    """Make urlopen() use the gate; proxies from the environment are ignored."""
    if not hasattr(urllib.request, "HTTPSHandler"):
        # CPython without ssl (the WASI guests) defines no HTTPSHandler, so build_opener()
        # fails with a NameError and code that names the class (nltk) can't be imported.
        urllib.request.HTTPSHandler = HTTPSHandler  # type: ignore[misc]
        urllib.request.__all__.append("HTTPSHandler")
    urllib.request.install_opener(
        urllib.request.build_opener(urllib.request.ProxyHandler({}), GateHandler())
    )


class GateHandler(urllib.request.BaseHandler):
    """Opens http:// and https:// URLs through the egress gate."""

    handler_order = 100  # before urllib's own HTTPHandler, which would need sockets

    def http_open(self, req: urllib.request.Request) -> urllib.response.addinfourl:
        timeout = getattr(req, "timeout", None)
        if not isinstance(timeout, int | float):
            timeout = None
        try:
            response = sandlot.fetch(
                req.full_url,
                method=req.get_method(),
                headers=dict(req.header_items()),
                body=_request_body(req.data),
                timeout=timeout,
            )
        except sandlot.FetchError as exc:
            raise urllib.error.URLError(str(exc)) from None
        message = Message()
        for name, value in response.headers.items():
            message[name] = value
        result = urllib.response.addinfourl(
            io.BytesIO(response.content), message, response.url, response.status
        )
        try:
            result.msg = HTTPStatus(response.status).phrase  # type: ignore[attr-defined]
        except ValueError:
            result.msg = ""  # type: ignore[attr-defined]
        return result

    https_open = http_open


class HTTPSHandler(urllib.request.AbstractHTTPHandler):
    """urllib's HTTPSHandler where there is no ssl module: http.client's HTTPSConnection is
    the gate's (_sandlot_http), which does TLS on the host; ``context`` is not used."""

    def __init__(
        self, debuglevel: int | None = None, context: Any = None, check_hostname: Any = None
    ) -> None:
        super().__init__(debuglevel)
        self._context = context

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(http.client.HTTPSConnection, req, context=self._context)

    https_request = urllib.request.AbstractHTTPHandler.do_request_


def _request_body(data: Any) -> bytes | None:
    if data is None:
        return None
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        raise TypeError("POST data should be bytes, an iterable of bytes, or a file object")
    if hasattr(data, "read"):
        return bytes(data.read())
    return b"".join(bytes(chunk) for chunk in data)
