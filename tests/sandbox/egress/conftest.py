"""The egress tests' fixtures: loopback servers that stop with the test."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

import pytest

from tests.loopback import LoopbackServer, Route, reply


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackServer]]:
    started: list[LoopbackServer] = []

    def start(
        routes: dict[str, Route] | None = None, tls: ssl.SSLContext | None = None
    ) -> LoopbackServer:
        server = LoopbackServer(routes or {}, fallback=reply(200, b"ok"), tls=tls)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
