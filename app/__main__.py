"""`python -m app`: serve on SANDLOT_HOST:SANDLOT_PORT with the embedded defaults."""

from __future__ import annotations

import logging

import uvicorn

from app.access_log import redact_access_log
from app.config import Settings
from app.host_header import HttpProtocol
from app.main import create_app


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The MCP transport logs the set-up of every stateless request at INFO.
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    redact_access_log()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=False,
        # httptools, keeping each request's target for the Host check (app/host_header.py).
        http=HttpProtocol,
    )


if __name__ == "__main__":
    main()
