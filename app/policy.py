"""What a caller may ask of a run: one place turns requests into limits and egress policies.

Every path that builds a run (``/v1/execute``, worker uploads, dispatch and its per-call
``X-Sandlot-Limits``, ``/v1/generate``, the tools and MCP) goes through these functions with
the :class:`Ceiling` of whoever the run is for:

* **The admin key**: the server's defaults and maximums (``SANDLOT_DEFAULT_*``,
  ``SANDLOT_MAX_*``), any public host, and the operator's private networks
  (``SANDLOT_EGRESS_PRIVATE_NETWORKS``).
* **A namespace** (its keys, and its workers whoever calls them): the policy the admin set
  on it. Its ``limits``, over the server defaults for the fields it leaves unset, are both
  the defaults and the ceilings: a request may only narrow them. Its ``allowed_hosts`` bound
  every allowlist (each entry must fall under one of them; empty means no egress at all).
  It may open the operator's private networks only when the admin set ``private_egress``.

A worker belongs to its namespace: its upload is checked against the namespace's ceiling
(whoever uploads it), and each dispatch runs it within the namespace's *current* policy,
so narrowing a namespace takes effect at its workers' next request.

The checks are pure functions of settings and stored values; only :func:`caller_ceiling`
reads the store. Refusals are :class:`~app.errors.ApiError` 422s naming the field.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from app.auth import Principal
from app.config import Settings
from app.errors import ApiError, invalid_field
from app.store import Store, namespaces, workers
from sandbox import AllowEntry, EgressPolicy, Limits
from sandbox.egress import IPNetwork, address_category, in_networks

__all__ = [
    "Ceiling",
    "allowlist_refusal",
    "caller_ceiling",
    "ceiling_of",
    "checked_hosts",
    "checked_limits",
    "covers",
    "egress_policy",
    "namespace_ceiling",
    "run_limits",
    "server_ceiling",
    "target_ceiling",
    "worker_run",
]

# The fields of Limits a request may set (code_bytes is the server's alone).
_REQUEST_LIMITS = ("cpu_ms", "wall_ms", "memory_mb", "output_bytes", "subrequests")


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The most a run may get, and what it gets when the request says nothing.

    ``namespace`` None is the admin key's (server-wide) ceiling. ``hosts`` None allows any
    public host; otherwise every allowlist entry must fall under one of them (see
    :func:`covers`). ``operator_networks`` is the operator's setting; ``private_egress``
    whether this ceiling may open them.
    """

    namespace: str | None
    defaults: Limits
    maximums: Limits
    hosts: tuple[AllowEntry, ...] | None
    operator_networks: tuple[IPNetwork, ...]
    private_egress: bool

    @property
    def private_networks(self) -> tuple[IPNetwork, ...]:
        """The networks this ceiling's runs may reach by IP literal."""
        return self.operator_networks if self.private_egress else ()

    def who(self) -> str:
        return "this server" if self.namespace is None else f"namespace {self.namespace!r}"


def server_ceiling(settings: Settings) -> Ceiling:
    """The admin key's ceiling: the server's limits, any public host, the operator's networks."""
    return Ceiling(
        namespace=None,
        defaults=settings.default_limits,
        maximums=settings.max_limits,
        hosts=None,
        operator_networks=settings.egress_private_networks,
        private_egress=True,
    )


def namespace_ceiling(
    settings: Settings,
    name: str,
    *,
    limits: Mapping[str, Any],
    allowed_hosts: Iterable[str],
    private_egress: bool,
) -> Ceiling:
    """A namespace's ceiling from its stored policy.

    Each limit is the namespace's own (the server default where it sets none), never above
    the server's maximum (the operator may have lowered it since). Stored entries that no
    longer parse are left out: a ceiling only ever narrows.
    """
    chosen = {}
    for field in fields(Limits):
        value = limits.get(field.name)
        default = getattr(settings.default_limits, field.name)
        cap = getattr(settings.max_limits, field.name)
        chosen[field.name] = min(int(value) if value is not None else default, cap)
    own = Limits(**chosen)
    hosts = []
    for text in allowed_hosts:
        try:
            hosts.append(AllowEntry.parse(text))
        except ValueError:
            continue
    return Ceiling(
        namespace=name,
        defaults=own,
        maximums=own,
        hosts=tuple(hosts),
        operator_networks=settings.egress_private_networks,
        private_egress=private_egress,
    )


def ceiling_of(
    settings: Settings,
    space: namespaces.Namespace | namespaces.Policy,
    name: str | None = None,
) -> Ceiling:
    """A stored namespace's ceiling, from the namespace or its policy (then ``name``)."""
    return namespace_ceiling(
        settings,
        space.name if isinstance(space, namespaces.Namespace) else str(name),
        limits=space.limits,
        allowed_hosts=space.allowed_hosts,
        private_egress=space.private_egress,
    )


def target_ceiling(settings: Settings, target: workers.Target) -> Ceiling:
    """The ceiling of a worker's namespace, from the row dispatch read with the worker."""
    return namespace_ceiling(
        settings,
        target.worker.namespace,
        limits=target.namespace_limits,
        allowed_hosts=target.namespace_allowed_hosts,
        private_egress=target.namespace_private_egress,
    )


async def caller_ceiling(settings: Settings, store: Store, caller: Principal) -> Ceiling:
    """The ceiling of a request made with ``caller``'s key (reads the namespace's policy)."""
    if caller.namespace is None:
        return server_ceiling(settings)
    # Read with the key (app/auth.py) when it came through authenticate.
    space = caller.policy
    if space is None:
        try:
            space = await asyncio.to_thread(namespaces.policy, store, caller.namespace)
        except namespaces.NamespaceNotFound:
            # The key's namespace was deleted after the key was checked: the key is gone too.
            raise ApiError(
                401,
                "unauthorized",
                "the API key is not valid",
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
    return ceiling_of(settings, space, caller.namespace)


def checked_limits(
    ceiling: Ceiling, requested: Mapping[str, Any], *, field: str = "limits"
) -> dict[str, int]:
    """The limits a request sets (None values dropped), each checked against the ceiling;
    422 naming ``field.<name>`` and the ceiling when one is above it or not a valid limit."""
    chosen = {name: value for name, value in requested.items() if value is not None}
    for name, value in chosen.items():
        if name not in _REQUEST_LIMITS:
            raise invalid_field(
                f"{field}.{name}", f"unknown limit; use {', '.join(_REQUEST_LIMITS)}"
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_field(f"{field}.{name}", f"must be an integer, got {value!r}")
        cap = getattr(ceiling.maximums, name)
        if value > cap:
            raise invalid_field(f"{field}.{name}", _over(ceiling, name, value, cap))
    try:
        ceiling.defaults.replace(**chosen)
    except ValueError as exc:
        raise invalid_field(field, str(exc)) from None
    return chosen


def run_limits(ceiling: Ceiling, requested: Mapping[str, Any], *, field: str = "limits") -> Limits:
    """The ceiling's defaults with the requested limits set (see :func:`checked_limits`)."""
    return ceiling.defaults.replace(**checked_limits(ceiling, requested, field=field))


def _over(ceiling: Ceiling, name: str, value: int, cap: int) -> str:
    if ceiling.namespace is None:
        return f"{name} is {value}; this server allows at most {cap}"
    return (
        f"{name} is {value}; namespace {ceiling.namespace!r} allows at most {cap} (its "
        f"limits.{name}, or the server default; the admin raises it with "
        f"PATCH /v1/namespaces/{ceiling.namespace})"
    )


def covers(outer: AllowEntry, inner: AllowEntry) -> bool:
    """Whether every URL ``inner`` allows is also allowed by ``outer``.

    Ports must be equal (a bare host means the scheme's default port, so ``api.x`` and
    ``api.x:443`` differ). ``*.x`` covers the strict subdomains of x and wildcards below it
    (``a.x``, ``*.a.x``, ``*.x``), never x itself; an IP literal covers only itself.
    """
    if outer.port != inner.port:
        return False
    if not outer.wildcard:
        return not inner.wildcard and inner.host == outer.host
    return inner.host.endswith("." + outer.host) or (inner.wildcard and inner.host == outer.host)


def allowlist_refusal(ceiling: Ceiling, entry: AllowEntry) -> str | None:
    """Why ``entry`` is outside the ceiling (a message naming it), or None if it is inside."""
    if entry.is_ip:
        ip = ipaddress.ip_address(entry.host)
        category = address_category(ip)
        if category is not None:
            if not in_networks(ip, ceiling.operator_networks):
                opened = ", ".join(map(str, ceiling.operator_networks)) or "none"
                return (
                    f"allowed_hosts entry {str(entry)!r} is a {category} address; only the "
                    "operator can open private networks (SANDLOT_EGRESS_PRIVATE_NETWORKS, "
                    f"now: {opened}), and then only for the admin key and namespaces the "
                    "admin lets reach them (private_egress)"
                )
            if not ceiling.private_egress:
                return (
                    f"allowed_hosts entry {str(entry)!r} is a {category} address; "
                    f"{ceiling.who()} may not reach private networks (the admin sets "
                    "private_egress on the namespace)"
                )
    if ceiling.hosts is None or any(covers(outer, entry) for outer in ceiling.hosts):
        return None
    if not ceiling.hosts:
        return (
            f"allowed_hosts entry {str(entry)!r}: {ceiling.who()} allows no egress (its "
            "allowed_hosts is empty; the admin sets it with PATCH "
            f"/v1/namespaces/{ceiling.namespace})"
        )
    return (
        f"allowed_hosts entry {str(entry)!r} is outside the allowed_hosts of {ceiling.who()} "
        f"({', '.join(map(str, ceiling.hosts))}); list only hosts those cover (same port; "
        "'*.x' covers subdomains of x)"
    )


def checked_hosts(
    ceiling: Ceiling, hosts: Iterable[str], *, field: str = "allowed_hosts"
) -> tuple[AllowEntry, ...]:
    """Parse an allowlist and check every entry against the ceiling; 422 naming the entry."""
    if isinstance(hosts, str):
        raise invalid_field(field, "a list of strings, not a single string")
    entries = []
    for text in hosts:
        try:
            entry = AllowEntry.parse(text)
        except ValueError as exc:
            raise invalid_field(field, str(exc)) from None
        refusal = allowlist_refusal(ceiling, entry)
        if refusal is not None:
            raise invalid_field(field, refusal)
        entries.append(entry)
    return tuple(entries)


def egress_policy(
    settings: Settings, ceiling: Ceiling, entries: Iterable[AllowEntry]
) -> EgressPolicy:
    """The run's policy: checked entries, the server's egress options, the ceiling's networks."""
    return EgressPolicy(
        allowed_hosts=tuple(entries),
        max_response_bytes=settings.egress_max_response_bytes,
        timeout_ms=settings.egress_timeout_ms,
        max_redirects=settings.egress_max_redirects,
        private_networks=ceiling.private_networks,
    )


def worker_run(
    settings: Settings,
    space: Ceiling,
    *,
    worker_limits: Mapping[str, Any],
    worker_hosts: Iterable[str],
    per_call: Mapping[str, int] | None = None,
) -> tuple[Limits, EgressPolicy]:
    """The limits and policy of one run of a stored worker, within its namespace's ``space``.

    Each limit is the lowest of the namespace's, the worker's own and the per-call one
    (already checked against the caller's ceiling with :func:`checked_limits`). The worker's
    allowlist (its namespace's when it has none) keeps only the entries the namespace allows
    today: what the admin has taken away since the upload is gone, without failing the
    request.
    """
    chosen = {}
    for field in fields(Limits):
        name = field.name
        values = [getattr(space.defaults, name)]
        if worker_limits.get(name) is not None:
            values.append(int(worker_limits[name]))
        if per_call and per_call.get(name) is not None and name in _REQUEST_LIMITS:
            values.append(int(per_call[name]))
        chosen[name] = min(values)
    entries = []
    for text in list(worker_hosts) or [str(host) for host in space.hosts or ()]:
        try:
            entry = AllowEntry.parse(text)
        except ValueError:
            continue
        if allowlist_refusal(space, entry) is None:
            entries.append(entry)
    return Limits(**chosen), egress_policy(settings, space, entries)
