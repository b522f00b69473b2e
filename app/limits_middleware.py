"""Refuse request bodies over the configured size before they are read into memory.

Two caps: ``SANDLOT_MAX_REQUEST_BYTES`` for the API, and the smaller
``SANDLOT_DISPATCH_MAX_BODY_BYTES`` for ``/dispatch/`` (also reached by worker
hostnames), whose bodies anonymous callers may send to public workers.

A response that starts before the request's body has been read in full (a 401
before the body, a 413, a route that ignores the body) closes the connection:
the server never drains a body it did not want, however long it is.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """ASGI middleware: 413 with the JSON error shape when a body exceeds its cap."""

    def __init__(self, app: ASGIApp, max_bytes: int, dispatch_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.dispatch_max_bytes = dispatch_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        dispatch = scope["path"].startswith("/dispatch/")
        cap = self.dispatch_max_bytes if dispatch else self.max_bytes
        setting = "SANDLOT_DISPATCH_MAX_BODY_BYTES" if dispatch else "SANDLOT_MAX_REQUEST_BYTES"
        message = f"request body is over {cap} bytes ({setting}); " + (
            "send a smaller body" if dispatch else "send less code or smaller files"
        )
        declared = dict(headers).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await self._refuse(send, message)
            return
        body_done = not any(
            name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
            for name, value in headers
        )
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen, body_done
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > cap:
                    # FastAPI re-raises HTTPException from body reading; the
                    # app's handler turns it into the JSON error shape.
                    raise HTTPException(413, message)
                body_done = not received.get("more_body", False)
            return received

        async def closing_send(sent: Message) -> None:
            if sent["type"] == "http.response.start" and not body_done:
                sent = {**sent, "headers": [*sent.get("headers", ()), (b"connection", b"close")]}
            await send(sent)

        await self.app(scope, limited_receive, closing_send)

    async def _refuse(self, send: Send, message: str) -> None:
        body = json.dumps(
            {"error": {"code": "payload_too_large", "message": message, "details": []}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
