"""deploy/haproxy.cfg: Debian's HAProxy (scripts/install-haproxy) accepts it as shipped,
health-checks /readyz and retries only what is safe to retry."""

from __future__ import annotations

import subprocess
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HAPROXY = Path("/usr/sbin/haproxy")


def _haproxy_check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert HAPROXY.exists(), (
        f"{HAPROXY} is missing: scripts/install-haproxy (make test) installs it"
    )
    return subprocess.run(
        [str(HAPROXY), "-c", "-f", str(config)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_haproxy_accepts_the_shipped_configuration_and_checks_readyz() -> None:
    text = (DEPLOY / "haproxy.cfg").read_text()
    assert "http-check send meth GET uri /readyz" in text
    checked = _haproxy_check(DEPLOY / "haproxy.cfg", {})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "WARNING" not in checked.stdout + checked.stderr


def test_haproxy_refuses_a_broken_configuration(tmp_path: Path) -> None:
    # The check above could pass by accident if haproxy -c accepted anything.
    broken = tmp_path / "haproxy.cfg"
    broken.write_text(
        (DEPLOY / "haproxy.cfg").read_text().replace("balance leastconn", "balance x")
    )
    assert _haproxy_check(broken, {}).returncode != 0
