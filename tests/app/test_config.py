"""app/config.py: settings from SANDLOT_* variables, checked at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings


def test_defaults_are_the_embedded_development_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SANDLOT_HOST", "SANDLOT_PORT", "SANDLOT_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.default_limits.cpu_ms <= settings.max_limits.cpu_ms
    assert settings.pool_size >= 1


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDLOT_PORT", "9001")
    monkeypatch.setenv("SANDLOT_DEFAULT_CPU_MS", "250")
    settings = Settings()
    assert settings.port == 9001
    assert settings.default_limits.cpu_ms == 250


def test_default_above_maximum_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDLOT_DEFAULT_WALL_MS", "999999")
    with pytest.raises(ValidationError, match="wall_ms is 999999"):
        Settings()


def test_production_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDLOT_ENVIRONMENT", "production")
    monkeypatch.delenv("SANDLOT_ADMIN_KEY", raising=False)
    with pytest.raises(ValidationError, match="SANDLOT_ADMIN_KEY"):
        Settings()
    monkeypatch.setenv("SANDLOT_ADMIN_KEY", "short")
    with pytest.raises(ValidationError, match="at least 32"):
        Settings()
    monkeypatch.setenv("SANDLOT_ADMIN_KEY", "k" * 40)
    with pytest.raises(ValidationError, match="SANDLOT_BUILD_ON_START"):
        Settings()
    monkeypatch.setenv("SANDLOT_BUILD_ON_START", "false")
    assert Settings().environment == "production"


def test_sqlite_under_the_data_dir_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDLOT_DATABASE_URL", raising=False)
    monkeypatch.setenv("SANDLOT_DATA_DIR", "/srv/data")
    assert Settings().database == "sqlite:////srv/data/sandlot.db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SANDLOT_PORT", "0"),
        ("SANDLOT_POOL_SIZE", "0"),
        ("SANDLOT_DEFAULT_MEMORY_MB", "16"),
        ("SANDLOT_LOG_LEVEL", "chatty"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
