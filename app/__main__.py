"""`python -m app`: serve on SANDLOT_HOST:SANDLOT_PORT with the embedded defaults.

SIGTERM (or Ctrl-C) drains first (app/draining.py); a second one exits at once.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

import uvicorn

from app import logs
from app.access_log import redact_access_log
from app.config import Settings
from app.draining import Drain
from app.host_header import HttpProtocol
from app.main import create_app

log = logging.getLogger("sandlot")


class DrainingServer(uvicorn.Server):
    """Uvicorn, but the first SIGTERM/SIGINT drains the app before the server stops."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None or self.drain.draining or self.should_exit:
            # Not serving yet, or the second signal: stop now.
            self.force_exit = self.drain.draining or self.should_exit
            self.should_exit = True
            return
        self.drain.draining = True  # at once: /readyz says 503 from here on
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._draining = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await self.drain.shut_down()
        finally:
            self.should_exit = True


def main() -> None:
    settings = Settings()
    secrets = [
        s.get_secret_value()
        for s in (settings.admin_key, settings.secrets_key, settings.openai_api_key)
        if s is not None
    ]
    logs.configure(level=settings.log_level, log_format=settings.log_format, secrets=secrets)
    # The MCP transport logs the set-up of every stateless request at INFO.
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    redact_access_log()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Our handler (app/logs.py) formats uvicorn's records too.
        log_config=None,
        proxy_headers=False,
        # httptools, keeping each request's target for the Host check (app/host_header.py).
        http=HttpProtocol,
        # The app drained before uvicorn stops; this bounds what is left after that.
        timeout_graceful_shutdown=5,
    )
    DrainingServer(config, app.state.drain).run()


if __name__ == "__main__":
    main()
