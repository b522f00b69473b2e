"""Calls for a session another replica holds: proxied to it (issue 15, item 2).

A session lives in the memory of the replica that made it (app/sessions/). When a
call for it reaches another replica (a load balancer without stickiness), that
replica proxies it to the owner, not a redirect: clients and load balancers need
nothing special, and an SSE turn streams through as it happens.

Authorisation is checked twice: here, the caller's key must be the session's owner
key (else the same 404 as for an unknown id, before anything is sent); on the owner,
the forwarded ``Authorization`` is authenticated again and the session's owner checked
again, as for any call. The hop adds ``X-Sandlot-Replica: <owner's replica id>``:
the owner answers such a call itself and never proxies it further, and a call meant
for an earlier process on the same URL answers 410 ``replica_lost``. A client sending
that header gains nothing: the check it skips is only the proxying.

A session whose replica is lost (no heartbeat for SANDLOT_REPLICA_LOST_MS), or whose
replica refuses the connection, answers 410 naming ``replica_lost`` at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from app.auth import Principal
from app.errors import ApiError
from app.replicas import Replica
from app.sessions import SessionManager
from app.store import replicas

__all__ = ["REPLICA_HEADER", "SessionProxy", "lost"]

log = logging.getLogger(__name__)

REPLICA_HEADER = "x-sandlot-replica"
# Not forwarded either way: framing and connection-level headers (the proxy frames anew).
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "x-request-id",
        REPLICA_HEADER,
    }
)


def lost(session_id: str) -> ApiError:
    return ApiError(
        410,
        "session_ended",
        f"session {session_id!r} has ended (replica_lost): the replica that held it stopped; "
        "create another with POST /v1/sessions",
    )


def unreachable(session_id: str, exc: httpx.HTTPError) -> ApiError:
    """What a caller gets when the session's replica can't be reached: a replica that
    refuses connections has stopped (410), one that didn't answer may yet (503, retry)."""
    if isinstance(exc, httpx.ConnectError):
        return lost(session_id)
    return ApiError(
        503,
        "replica_unavailable",
        f"the replica that holds session {session_id!r} did not answer ({exc}); retry",
        headers={"Retry-After": "1"},
    )


class SessionProxy:
    """Forwards calls for sessions of other replicas; made and closed in the lifespan."""

    def __init__(self, sessions: SessionManager, replica: Replica, max_wall_ms: int) -> None:
        self._sessions = sessions
        self._replica = replica
        # A turn may stay silent for as long as its wall-time limit allows (a sleep
        # sends no event); an owner silent for longer than the most any turn may take
        # is stuck (or cut off), and the call answers 503.
        read_s = max_wall_ms / 1000 + 30
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(read_s, connect=3.0, pool=5.0), follow_redirects=False
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def route(self, request: Request, caller: Principal, session_id: str) -> Response | None:
        """The owner's answer when another replica holds the session; None when this
        replica answers (it holds the session, or no replica holds one of this key's)."""
        owner = await self._owner(caller, session_id, request.headers.get(REPLICA_HEADER))
        if owner is None:
            return None
        return await self._forward(request, owner.replica_url, owner.replica_id, session_id)

    async def _owner(
        self, caller: Principal, session_id: str, meant: str | None
    ) -> replicas.Owner | None:
        """The other replica holding the caller's session; None when this one answers.
        410 when the holder is lost (or a hop was meant for an earlier process)."""
        if self._sessions.holds(session_id):
            return None
        if meant is not None:
            if meant != self._replica.id:
                raise lost(session_id)
            return None
        replica = self._replica
        owner = await asyncio.to_thread(
            replicas.find, replica.store, session_id, replica.alive_since()
        )
        if owner is None or owner.key_id != caller.key_id or owner.replica_id == replica.id:
            return None
        if not owner.replica_alive:
            raise lost(session_id)
        return owner

    async def call(
        self,
        caller: Principal,
        session_id: str,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response | None:
        """``method path`` (under /v1/sessions/{id}) on the replica holding the caller's
        session, as the caller (the session tools' way there); None when this replica
        holds it or none does. An error answer is raised as the owner's ApiError."""
        owner = await self._owner(caller, session_id, None)
        if owner is None:
            return None
        headers = {"authorization": caller.authorization, REPLICA_HEADER: owner.replica_id}
        url = f"{owner.replica_url}/v1/sessions/{session_id}{path}"
        try:
            answer = await self._client.request(
                method, url, headers=headers, json=json_body, content=content
            )
        except httpx.HTTPError as exc:
            raise unreachable(session_id, exc) from None
        if answer.status_code >= 400:
            try:
                error = answer.json()["error"]
                raise ApiError(answer.status_code, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    502,
                    "replica_error",
                    f"the replica holding the session answered {answer.status_code}",
                ) from None
        return answer

    async def _forward(
        self, request: Request, base_url: str, replica_id: str, session_id: str
    ) -> Response:
        headers = [
            (name, value) for name, value in request.headers.items() if name.lower() not in _HOP
        ]
        headers.append((REPLICA_HEADER, replica_id))
        headers.append(("x-request-id", str(request.scope.get("state", {}).get("request_id", ""))))
        # The path as the caller encoded it (a file named "a?b" stays one path), its dots
        # encoded too so that no ".." segment is folded on the way: the owner decodes both.
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        target = raw_path.replace(b".", b"%2E")
        if request.scope.get("query_string"):
            target += b"?" + request.scope["query_string"]
        url = httpx.URL(base_url).copy_with(raw_path=target)
        outgoing = self._client.build_request(
            request.method, url, headers=headers, content=await request.body()
        )
        try:
            answer = await self._client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.ConnectError):
                log.info("session %s: its replica %s refuses connections", session_id, replica_id)
            raise unreachable(session_id, exc) from None
        kept = {name: value for name, value in answer.headers.items() if name.lower() not in _HOP}
        if "content-length" in answer.headers and "content-encoding" not in answer.headers:
            kept["content-length"] = answer.headers["content-length"]
        return StreamingResponse(
            _relay(answer, session_id, framed="content-length" in kept),
            status_code=answer.status_code,
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    async def described(self, request: Request, caller: Principal) -> list[dict[str, Any]]:
        """The caller's open sessions on other replicas, as their owners describe them."""
        replica = self._replica
        owners = await asyncio.to_thread(
            replicas.open_of, replica.store, caller.key_id, time.time(), replica.alive_since()
        )
        elsewhere = [o for o in owners if o.replica_id != replica.id]

        async def describe(owner: replicas.Owner) -> dict[str, Any] | None:
            headers = {
                "authorization": request.headers.get("authorization", ""),
                REPLICA_HEADER: owner.replica_id,
            }
            url = f"{owner.replica_url}/v1/sessions/{owner.session_id}"
            try:
                answer = await self._client.get(url, headers=headers, timeout=5.0)
            except httpx.HTTPError:
                return None  # lost meanwhile: not open any more
            if answer.status_code != 200:
                return None
            body: dict[str, Any] = json.loads(answer.content)
            return body if body.get("state") == "open" else None

        found = await asyncio.gather(*(describe(owner) for owner in elsewhere))
        return [body for body in found if body is not None]


async def _relay(answer: httpx.Response, session_id: str, *, framed: bool) -> AsyncIterator[bytes]:
    """The owner's body as it comes. If the owner goes away mid-answer, a stream (SSE: no
    length) just stops, without its ``end`` event, as the owner's own would have; a body
    of a stated length can't be cut short cleanly, so the connection is aborted."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("session %s: its replica went away mid-answer (%s)", session_id, exc)
        if framed:
            raise
