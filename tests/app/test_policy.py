"""app/policy.py: ceilings, allowlist coverage and private networks, as pure functions."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from app.config import Settings
from app.errors import ApiError
from app.policy import (
    Ceiling,
    checked_hosts,
    checked_limits,
    covers,
    namespace_ceiling,
    run_limits,
    server_ceiling,
    worker_run,
)
from sandbox import AllowEntry


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("SANDLOT_EGRESS_PRIVATE_NETWORKS", "SANDLOT_DEFAULT_CPU_MS", "SANDLOT_MAX_CPU_MS"):
        monkeypatch.delenv(name, raising=False)
    return Settings(egress_private_networks=("127.0.0.0/8", "10.0.0.0/8"))  # type: ignore[arg-type]


def space(settings: Settings, *, private_egress: bool = False, **policy: Any) -> Ceiling:
    return namespace_ceiling(
        settings,
        "acme",
        limits=policy.get("limits", {}),
        allowed_hosts=policy.get("allowed_hosts", []),
        private_egress=private_egress,
    )


def refused(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status_code == 422
    return caught.value


# --- limits -------------------------------------------------------------------------------


def test_namespace_limits_are_defaults_and_ceilings(settings: Settings) -> None:
    ceiling = space(settings, limits={"cpu_ms": 1000})
    assert run_limits(ceiling, {}).cpu_ms == 1000
    assert run_limits(ceiling, {"cpu_ms": 200}).cpu_ms == 200
    error = refused(lambda: run_limits(ceiling, {"cpu_ms": 60_000}))
    assert error.details[0].field == "limits.cpu_ms"
    assert "namespace 'acme' allows at most 1000" in error.message


def test_unset_namespace_limits_are_the_server_defaults(settings: Settings) -> None:
    # The attack of finding 6: a namespace key asking for the server maximum.
    ceiling = space(settings)
    assert run_limits(ceiling, {}).cpu_ms == settings.default_cpu_ms
    error = refused(lambda: run_limits(ceiling, {"cpu_ms": settings.max_cpu_ms}))
    assert f"at most {settings.default_cpu_ms}" in error.message


def test_admin_keeps_the_server_maximums(settings: Settings) -> None:
    ceiling = server_ceiling(settings)
    assert run_limits(ceiling, {"cpu_ms": settings.max_cpu_ms}).cpu_ms == settings.max_cpu_ms
    error = refused(lambda: run_limits(ceiling, {"cpu_ms": settings.max_cpu_ms + 1}))
    assert error.message == (
        f"limits.cpu_ms: cpu_ms is {settings.max_cpu_ms + 1}; this server allows at most "
        f"{settings.max_cpu_ms}"
    )


def test_namespace_ceiling_never_exceeds_the_server_maximum(settings: Settings) -> None:
    # Stored before the operator lowered SANDLOT_MAX_CPU_MS.
    ceiling = space(settings, limits={"cpu_ms": settings.max_cpu_ms * 10})
    assert ceiling.maximums.cpu_ms == settings.max_cpu_ms


@pytest.mark.parametrize(
    ("requested", "field"),
    [
        pytest.param({"code_bytes": 1}, "X-Sandlot-Limits.code_bytes", id="not-a-request-limit"),
        pytest.param({"cpu_ms": "9"}, "X-Sandlot-Limits.cpu_ms", id="not-an-integer"),
        pytest.param({"cpu_ms": True}, "X-Sandlot-Limits.cpu_ms", id="boolean"),
        pytest.param({"cpu_ms": 0}, "X-Sandlot-Limits", id="below-one"),
    ],
)
def test_per_call_limits_are_validated(
    settings: Settings, requested: dict[str, Any], field: str
) -> None:
    error = refused(lambda: checked_limits(space(settings), requested, field="X-Sandlot-Limits"))
    assert error.details[0].field == field


# --- allowlists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("api.x.com", "api.x.com", True),
        ("api.x.com", "api.x.com:443", False),
        ("api.x.com:8443", "api.x.com:8443", True),
        ("api.x.com:8443", "api.x.com", False),
        ("api.x.com", "evil.api.x.com", False),
        ("*.x.com", "api.x.com", True),
        ("*.x.com", "a.b.x.com", True),
        ("*.x.com", "*.a.x.com", True),
        ("*.x.com", "*.x.com", True),
        ("*.x.com", "x.com", False),
        ("*.x.com", "evilx.com", False),
        ("*.x.com", "api.x.com:8080", False),
        ("*.x.com:8080", "api.x.com:8080", True),
        ("api.x.com", "*.api.x.com", False),
        ("203.0.113.7", "203.0.113.7", True),
        ("203.0.113.7:80", "203.0.113.7", False),
    ],
)
def test_covers(outer: str, inner: str, expected: bool) -> None:
    assert covers(AllowEntry.parse(outer), AllowEntry.parse(inner)) is expected


def test_namespace_allowlist_is_the_ceiling(settings: Settings) -> None:
    ceiling = space(settings, allowed_hosts=["*.acme.test", "api.partner.test"])
    assert [str(e) for e in checked_hosts(ceiling, ["a.acme.test", "api.partner.test"])] == [
        "a.acme.test",
        "api.partner.test",
    ]
    error = refused(lambda: checked_hosts(ceiling, ["a.acme.test", "evil.test"]))
    assert error.details[0].field == "allowed_hosts"
    assert "'evil.test' is outside the allowed_hosts of namespace 'acme'" in error.message


def test_empty_namespace_allowlist_means_no_egress(settings: Settings) -> None:
    assert checked_hosts(space(settings), []) == ()
    error = refused(lambda: checked_hosts(space(settings), ["api.example.com"]))
    assert "allows no egress" in error.message


def test_admin_may_list_any_public_host(settings: Settings) -> None:
    assert len(checked_hosts(server_ceiling(settings), ["example.com", "*.x.test:8443"])) == 2


# --- private networks (finding 5) ---------------------------------------------------------

PRIVATE_LITERALS = [
    pytest.param("169.254.169.254", "cloud metadata", id="metadata"),
    pytest.param("[fd00:ec2::254]", "cloud metadata", id="metadata-v6"),
    pytest.param("127.0.0.1:8000", "loopback", id="loopback"),
    pytest.param("[::1]:8000", "loopback", id="loopback-v6"),
    pytest.param("10.1.2.3", "private", id="rfc1918"),
    pytest.param("[::ffff:127.0.0.1]", "IPv4-mapped loopback", id="mapped"),
]


@pytest.mark.parametrize(("entry", "category"), PRIVATE_LITERALS)
def test_namespace_key_may_not_list_private_literals(
    settings: Settings, entry: str, category: str
) -> None:
    # Even when the namespace's own allowlist names the literal: only private_egress opens it.
    ceiling = space(settings, allowed_hosts=[entry])
    error = refused(lambda: checked_hosts(ceiling, [entry]))
    assert error.details[0].field == "allowed_hosts"
    assert f"is a {category} address" in error.message
    assert "SANDLOT_EGRESS_PRIVATE_NETWORKS" in error.message or "private_egress" in error.message


def test_private_egress_opens_only_the_operators_networks(settings: Settings) -> None:
    ceiling = space(
        settings, private_egress=True, allowed_hosts=["127.0.0.1:8000", "169.254.169.254"]
    )
    [entry] = checked_hosts(ceiling, ["127.0.0.1:8000"])
    assert str(entry) == "127.0.0.1:8000"
    assert ceiling.private_networks == settings.egress_private_networks
    error = refused(lambda: checked_hosts(ceiling, ["169.254.169.254"]))
    assert "only the operator can open private networks" in error.message


def test_admin_may_open_only_inside_the_operators_networks(settings: Settings) -> None:
    admin = server_ceiling(settings)
    assert len(checked_hosts(admin, ["127.0.0.1:8000", "10.9.8.7"])) == 2
    error = refused(lambda: checked_hosts(admin, ["169.254.169.254"]))
    assert error.message.startswith(
        "allowed_hosts: allowed_hosts entry '169.254.169.254' is a cloud metadata address; "
        "only the operator can open private networks (SANDLOT_EGRESS_PRIVATE_NETWORKS, now: "
        "127.0.0.0/8, 10.0.0.0/8)"
    )


def test_no_operator_networks_closes_them_for_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDLOT_EGRESS_PRIVATE_NETWORKS", raising=False)
    closed = Settings()
    error = refused(lambda: checked_hosts(server_ceiling(closed), ["127.0.0.1:8000"]))
    assert "now: none" in error.message
    assert server_ceiling(closed).private_networks == ()


# --- a worker's runs ----------------------------------------------------------------------


def test_worker_runs_within_its_namespaces_current_policy(settings: Settings) -> None:
    # Uploaded when the namespace allowed more; the admin has narrowed it since.
    narrowed = space(settings, limits={"cpu_ms": 300}, allowed_hosts=["api.acme.test"])
    limits, egress = worker_run(
        settings,
        narrowed,
        worker_limits={"cpu_ms": 2000, "wall_ms": 700},
        worker_hosts=["api.acme.test", "old.partner.test", "127.0.0.1:8000"],
        per_call={"wall_ms": 500},
    )
    assert (limits.cpu_ms, limits.wall_ms) == (300, 500)
    assert [str(e) for e in egress.allowed_hosts] == ["api.acme.test"]
    assert egress.private_networks == ()


def test_worker_private_literal_needs_the_grant_at_run_time(settings: Settings) -> None:
    hosts = ["127.0.0.1:8000"]
    granted = space(settings, private_egress=True, allowed_hosts=hosts)
    _, egress = worker_run(settings, granted, worker_limits={}, worker_hosts=hosts)
    assert [str(e) for e in egress.allowed_hosts] == hosts
    assert ipaddress.ip_network("127.0.0.0/8") in egress.private_networks
    revoked = space(settings, private_egress=False, allowed_hosts=hosts)
    _, egress = worker_run(settings, revoked, worker_limits={}, worker_hosts=hosts)
    assert (egress.allowed_hosts, egress.private_networks) == ((), ())


def test_worker_without_hosts_gets_its_namespaces(settings: Settings) -> None:
    ceiling = space(settings, allowed_hosts=["*.acme.test"])
    _, egress = worker_run(settings, ceiling, worker_limits={}, worker_hosts=[])
    assert [str(e) for e in egress.allowed_hosts] == ["*.acme.test"]
