"""The MCP server at ``/mcp``: the agent tools (app/tools.py) over streamable HTTP.

Built on the official ``mcp`` SDK's low-level server, in stateless mode (every
POST stands alone, so nothing is kept between calls and any number of clients
can come and go). Every HTTP request needs the same Bearer key as /v1: the
endpoint authenticates it first (401 with the API's JSON error shape) and a tool
call then runs as that key, through :func:`app.tools.call_tool`. A refused call
is a tool result with ``isError``; an unknown tool is a protocol error. Charts a run
made come back as image content beside the text.

The session manager is made and run in the app's lifespan (:func:`serve_mcp`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from app.auth import Principal, current_caller
from app.deps import services_of
from app.errors import ApiError, error_response
from app.tools import TOOLS, call_tool, tool_named

__all__ = ["PATH", "McpEndpoint", "create_server", "serve_mcp"]

PATH = "/mcp"
# Where the endpoint leaves the authenticated caller, in the request's ASGI scope.
_CALLER = "sandlot.caller"

_INSTRUCTIONS = (
    "Sandlot runs untrusted Python in WebAssembly sandboxes. Use execute_code to run code "
    "once (stdout, stderr, the value of a trailing expression, the error); deploy_worker to "
    "keep code as an HTTP service (a worker) in a namespace, and invoke_worker to call it; "
    "create_session and run_in_session to work in steps in one interpreter that keeps its "
    "variables and files (upload_file, download_file; close_session when done)."
)


def create_server(app: FastAPI) -> Server[Any]:
    """An MCP server whose tools run against ``app``'s services as the request's caller."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=tool.name, description=tool.description, input_schema=tool.parameters
                )
                for tool in TOOLS
            ]
        )

    async def run_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            tool_named(params.name)
        except ApiError as exc:
            raise MCPError(types.INVALID_PARAMS, exc.message) from None
        output = await call_tool(
            services_of(app), _caller(ctx), params.name, params.arguments or {}
        )
        content: list[types.ContentBlock] = [types.TextContent(text=output.text)]
        content.extend(
            types.ImageContent(data=data, mime_type=mime_type) for mime_type, data in output.images
        )
        return types.CallToolResult(
            content=content,
            structured_content=output.result,
            is_error=output.is_error,
        )

    return Server(
        "sandlot",
        version=app.version,
        instructions=_INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=run_tool,
    )


def _caller(ctx: ServerRequestContext[Any]) -> Principal:
    request = ctx.request
    caller = request.scope.get(_CALLER) if isinstance(request, Request) else None
    if not isinstance(caller, Principal):
        # Every request passes McpEndpoint first; a message without one is a bug.
        raise RuntimeError("an MCP request reached a tool without an authenticated caller")
    return caller


class McpEndpoint:
    """The ASGI app at /mcp: authenticate, then hand the request to the session manager."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            caller = await current_caller(request)
        except ApiError as exc:
            await error_response(exc)(scope, receive, send)
            return
        manager: StreamableHTTPSessionManager = request.app.state.mcp_sessions
        await manager.handle_request({**scope, _CALLER: caller}, receive, send)


@asynccontextmanager
async def serve_mcp(app: FastAPI) -> AsyncIterator[None]:
    """Run the MCP session manager for as long as the app serves (part of its lifespan)."""
    manager = StreamableHTTPSessionManager(
        create_server(app),
        stateless=True,
        max_request_body_size=app.state.settings.max_request_bytes,
    )
    app.state.mcp_sessions = manager
    async with manager.run():
        yield
