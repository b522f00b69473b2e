"""The guest API of a user worker, as in Cloudflare's Python Workers.

    from workers import Response

    def on_fetch(request, env):
        name = request.json().get("name", "world") if request.method == "POST" else "world"
        return Response.json({"hello": name, "greeting": env.GREETING})

``on_fetch`` may be ``async def``. ``env`` has the worker's vars and secrets as
attributes (``env.API_TOKEN``). Outbound HTTP goes through ``sandlot.fetch`` and
the worker's allowlist, like any run.
"""

from __future__ import annotations

import base64
import json as _json
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["Env", "Headers", "Request", "Response"]


class Headers(Mapping[str, str]):
    """Request headers: case-insensitive lookup; repeated headers joined with ', '."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            self._values[key] = f"{self._values[key]}, {value}" if key in self._values else value

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Headers({self._values!r})"


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


class Request:
    """The incoming request: ``method``, ``url``, ``path``, ``query``, ``headers`` and the body.

    ``metadata`` is empty unless the worker's namespace is trusted; then it holds
    ``client_address``, ``original_host`` and ``routed_by`` (``path``,
    ``hostname`` or ``custom_hostname``).
    """

    def __init__(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        from urllib.parse import urlsplit

        self.method = method
        self.url = url
        parts = urlsplit(url)
        self.path = parts.path
        self.query = parts.query
        self.headers = Headers(headers)
        self.metadata = dict(metadata or {})
        self._body = body

    def bytes(self) -> bytes:
        return self._body

    def text(self) -> str:
        return self._body.decode(_charset(self.headers.get("content-type", "")), errors="replace")

    def json(self) -> Any:
        return _json.loads(self._body or b"null")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class Response:
    """What ``on_fetch`` returns: a body (str, bytes or None), a status and headers."""

    def __init__(
        self,
        body: str | bytes | None = None,
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code (100-599), got {status!r}")
        self.body = body.encode() if isinstance(body, str) else (body or b"")
        self.status = status
        pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
        self.headers = [(str(k), str(v)) for k, v in pairs]
        if isinstance(body, str) and not any(k.lower() == "content-type" for k, _ in self.headers):
            self.headers.append(("content-type", "text/plain; charset=utf-8"))

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        merged = {"content-type": "application/json", **(headers or {})}
        return cls(_json.dumps(data).encode(), status, merged)

    def _wire(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": self.headers,
            "body": base64.b64encode(self.body).decode(),
        }


class Env:
    """The worker's bindings: vars and secrets, as attributes and by ``env["NAME"]``."""

    def __init__(self, bindings: Mapping[str, str]) -> None:
        self.__dict__.update(bindings)

    def __getitem__(self, name: str) -> str:
        return str(self.__dict__[name])

    def __repr__(self) -> str:
        return f"<Env {sorted(self.__dict__)}>"  # names only: values may be secrets


def _serve(module: str, bindings_var: str) -> dict[str, Any]:
    """Serve one request with the worker's ``on_fetch``; the run's result is the response.

    The platform's job is just ``workers._serve(...)``: this function is in the
    guest snapshot, compiled once, because compiling an entry program in every
    run cost more than the rest of a trivial request. The request comes on
    stdin as JSON, the bindings in one environment variable (removed first).
    """
    import inspect
    import os

    bindings = _json.loads(os.environ.pop(bindings_var, "{}"))
    incoming = _json.loads(sys.stdin.read())
    sys.path.insert(0, "/work")
    main = _load_main(module)
    request = Request(
        incoming["method"],
        incoming["url"],
        incoming["headers"],
        base64.b64decode(incoming["body"]),
        incoming["metadata"],
    )
    response = main.on_fetch(request, Env(bindings))
    if inspect.isawaitable(response):
        response = _resolve(response)
    if not isinstance(response, Response):
        raise TypeError(f"on_fetch returned {type(response).__name__}, not a workers.Response")
    return response._wire()


def _load_main(module: str) -> Any:
    """The worker's main module, from the bytecode its build made when it matches.

    A top-level main module runs from its code object instead of going through
    the import system's search of /work; nested ones (``app/main.py``) import.
    """
    import importlib
    import importlib.util

    if "." in module:
        return importlib.import_module(module)
    path = f"/work/{module}.py"
    code = None
    try:
        with open(importlib.util.cache_from_source(path), "rb") as cached:
            data = cached.read()
        if data[:4] == importlib.util.MAGIC_NUMBER:
            import marshal

            code = marshal.loads(data[16:])
    except (OSError, ValueError, EOFError, TypeError):
        code = None  # no bytecode, or from another Python: compile the source
    if code is None:
        with open(path, "rb") as source:
            code = compile(source.read(), path, "exec", dont_inherit=True)
    main = type(sys)(module)
    main.__file__ = path
    sys.modules[module] = main
    exec(code, main.__dict__)
    return main


def _resolve(value: Any) -> Any:
    """The value of an awaitable ``on_fetch`` result, driven the engine's way.

    Only async handlers pay for an event loop: Pyodide suspends on its own
    loop (JSPI), other engines run a fresh one.
    """
    if sys.platform == "emscripten":
        from pyodide.ffi import run_sync

        return run_sync(value)
    import asyncio

    async def wait() -> Any:
        return await value

    return asyncio.run(wait())


def _warm() -> None:
    """Do once what every request's first use would: fill the ABC subclass caches.

    Runs at import, so the engines' snapshots hold the filled caches and a run
    doesn't walk ``Mapping``'s subclass hooks on each ``isinstance``.
    """
    for headers in (None, {}, [("a", "b")], Headers([])):
        Response("", 200, headers)
    Response.json(None)
    Request("GET", "/?a=b", [("a", "b")], b"", {"k": "v"}).json()


_warm()
