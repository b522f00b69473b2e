"""Sessions: interpreters kept between calls, owned by the API key that made them.

A session is an instance in one of the engine's worker processes
(:class:`~sandbox.pool.PoolSession`) plus a directory on the host mounted at ``/work``
for every turn (:class:`~sandbox.workspace.Workspace`). This package keeps them: in the
service process's memory (one replica owns its sessions; a restart ends them all), with
their owner, limits, expiry and usage.

* **Ownership**: only the key that made a session sees it; any other key gets 404.
* **One turn at a time**: a turn or a file call while a turn runs is a 409, never a wait.
* **How a session ends** (later calls get 410 naming the reason for an hour, then 404):
  ``closed`` (DELETE), ``idle_timeout``, ``max_lifetime``, ``shed`` (room for a new
  session), ``disk_quota`` (its directory went over the quota: on wasmtime the engine
  stops the turn as it does; after every turn this package checks), ``crashed`` (its
  worker process died), ``exited`` (``os._exit``), or the status of the turn that ended it.
* **Capacity**: per key (``SANDLOT_SESSIONS_MAX_PER_KEY``: 429) and server-wide
  (``SANDLOT_SESSIONS_MAX_OPEN``, ``SANDLOT_SESSIONS_MEMORY_MB``): over a server-wide
  cap, sessions idle for ``SANDLOT_SESSIONS_SHED_IDLE_S`` or more are ended, longest-idle
  first, before the new one is refused with 429.

:class:`SessionManager` is made in the app's lifespan; routes, tools and MCP call it.
"""

from app.sessions.manager import SessionManager
from app.sessions.record import Session

__all__ = ["Session", "SessionManager"]
