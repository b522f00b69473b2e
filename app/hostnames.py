"""Hostname routing: requests for a worker's own hostname go to its dispatch.

Two kinds of hostname reach a worker, like Workers for Platforms' routes:

* ``{worker}.{namespace}.{SANDLOT_DISPATCH_DOMAIN}``, parsed, no lookup;
* custom hostnames (``shop.example.com``) from the namespace's hostname table.

The middleware rewrites such a request's path to ``/dispatch/{ns}/{worker}/…``
and records how it was routed in the request state (``sandlot_route``), so the
one dispatch route serves all three styles. Every path on a worker's hostname
belongs to the worker: the control plane is not reachable through it. Requests
for IP literals, ``localhost``, the dispatch domain itself and the API's own
hostnames (``SANDLOT_API_HOSTNAMES``, and names under them) are the API's, even
if a hostname row says otherwise.

Who may claim a custom hostname (``claim_problem``): a namespace's key only
names under the suffixes the admin granted that namespace
(``custom_hostname_suffixes``); the admin key any name; nobody the API's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import ApiError, error_response
from app.store import ReadCache, Store, hostnames

__all__ = [
    "ROUTE_KEY",
    "HostRouting",
    "Route",
    "claim_problem",
    "hostname_problem",
    "normalize_host",
    "under",
]

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ROUTE_KEY = "sandlot_route"


@dataclass(frozen=True, slots=True)
class Route:
    """How a request reached a worker, kept in ``request.state.sandlot_route``."""

    routed_by: Literal["hostname", "custom_hostname"]
    host: str


def normalize_host(header: str) -> str:
    """The Host header's name: lower case, without port or trailing dot."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rpartition(":")[0].rstrip(".") if ":" in host else host.rstrip(".")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")
    return True


def under(hostname: str, suffix: str) -> bool:
    """``hostname`` is ``suffix`` or a name under it (``a.shop.example`` under ``shop.example``)."""
    return hostname == suffix or hostname.endswith("." + suffix)


def hostname_problem(
    hostname: str, dispatch_domain: str | None, api_hostnames: Sequence[str] = ()
) -> str | None:
    """Why ``hostname`` can't be a custom hostname (for anyone), or None if it can."""
    if hostname != hostname.lower() or hostname.endswith("."):
        return "write hostnames in lower case, without a trailing dot"
    if len(hostname) > 253:
        return "at most 253 characters"
    labels = hostname.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "a DNS name like shop.example.com: labels of a-z, 0-9 and '-'"
    if labels[-1].isdigit() or _is_address(hostname):
        return "IP addresses and localhost serve the API, not workers"
    if dispatch_domain and (
        hostname == dispatch_domain or hostname.endswith("." + dispatch_domain)
    ):
        return f"names under {dispatch_domain} already route to workers by name"
    for api in api_hostnames:
        if under(hostname, api):
            return f"{api} and names under it serve the API (SANDLOT_API_HOSTNAMES)"
    return None


def claim_problem(hostname: str, namespace: str, suffixes: Sequence[str]) -> str | None:
    """Why a key of ``namespace`` may not claim ``hostname``, or None if it may.

    Only names under the suffixes the admin granted the namespace; the admin key
    claims others for it.
    """
    if any(under(hostname, suffix) for suffix in suffixes):
        return None
    if not suffixes:
        return (
            f"namespace {namespace!r} may claim no custom hostnames: the admin grants "
            "suffixes (custom_hostname_suffixes) or claims the hostname with the admin key"
        )
    return (
        f"namespace {namespace!r} may claim only hostnames under "
        f"{', '.join(sorted(suffixes))}; the admin key can claim others for it"
    )


class HostRouting:
    """ASGI middleware: route worker hostnames to ``/dispatch/{ns}/{worker}``."""

    def __init__(
        self, app: ASGIApp, *, dispatch_domain: str | None, api_hostnames: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.suffix = "." + dispatch_domain if dispatch_domain else None
        self.api_hostnames = tuple(api_hostnames)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers", ())).get(b"host", b"").decode("latin-1")
        host = normalize_host(raw)
        if not host or _is_address(host) or any(under(host, api) for api in self.api_hostnames):
            await self.app(scope, receive, send)
            return
        if self.suffix and host.endswith(self.suffix):
            labels = host.removesuffix(self.suffix).split(".")
            if len(labels) != 2:
                domain = self.suffix[1:]
                error = ApiError(
                    404,
                    "worker_not_found",
                    f"no worker at {host!r}: worker hostnames look like "
                    f"<worker>.<namespace>.{domain}",
                )
                await error_response(error)(scope, receive, send)
                return
            worker, namespace = labels
            route = Route("hostname", host)
        else:
            state = scope["app"].state
            store: Store = state.store
            routes: ReadCache[str, tuple[str, str] | None] = state.hostname_routes
            # Every request for a name that isn't an address asks: the API's own
            # hostname too, so misses are kept as well.
            found = await routes.get(host, lambda: hostnames.route(store, host))
            if found is None:
                await self.app(scope, receive, send)
                return
            namespace, worker = found
            route = Route("custom_hostname", host)
        prefix = f"/dispatch/{namespace}/{worker}"
        scope = {
            **scope,
            "path": prefix + scope["path"],
            "raw_path": prefix.encode() + scope.get("raw_path", scope["path"].encode()),
            "state": {**scope.get("state", {}), ROUTE_KEY: route},
        }
        await self.app(scope, receive, send)
