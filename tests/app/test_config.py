"""app/config.py: settings from SANDLOT_* variables, checked at start-up."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
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
    # Worker secrets are encrypted at rest: production brings its key (no key file).
    monkeypatch.delenv("SANDLOT_SECRETS_KEY", raising=False)
    with pytest.raises(ValidationError, match="SANDLOT_SECRETS_KEY must be set"):
        Settings()
    monkeypatch.setenv("SANDLOT_SECRETS_KEY", Fernet.generate_key().decode())
    with pytest.raises(ValidationError, match="SANDLOT_BUILD_ON_START"):
        Settings()
    monkeypatch.setenv("SANDLOT_BUILD_ON_START", "false")
    assert Settings().environment == "production"


def test_secrets_keys_are_fernet_keys_and_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("SANDLOT_SECRETS_KEY", f"{first}, {second}")
    key = Settings().secrets_key
    assert key is not None and key.get_secret_value() == f"{first}, {second}"
    monkeypatch.setenv("SANDLOT_SECRETS_KEY", f"{first},not-a-key-but-a-secret")
    with pytest.raises(ValidationError, match="key 2 is not a Fernet key") as refused:
        Settings()
    assert "not-a-key-but-a-secret" not in str(refused.value)


def test_api_hostnames_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDLOT_API_HOSTNAMES", "API.example.com., sandlot.example.org")
    assert Settings().api_hostnames == ["api.example.com", "sandlot.example.org"]
    monkeypatch.setenv("SANDLOT_API_HOSTNAMES", "localhost")
    with pytest.raises(ValidationError, match="SANDLOT_API_HOSTNAMES"):
        Settings()


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
        ("SANDLOT_VERSION_RETENTION", "0"),
        ("SANDLOT_NAMESPACE_STORAGE_MB", "0"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


_MODEL_VARIABLES = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL")


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _MODEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("SANDLOT_" + name.removeprefix("OPENAI_"), raising=False)
        monkeypatch.delenv("SANDLOT_" + name, raising=False)
    return monkeypatch


def test_no_model_by_default(no_model: pytest.MonkeyPatch) -> None:
    assert Settings().missing_model_settings() == [
        "SANDLOT_OPENAI_BASE_URL",
        "SANDLOT_OPENAI_API_KEY",
        "SANDLOT_MODEL",
    ]


def test_model_settings_fall_back_to_the_openai_variables(no_model: pytest.MonkeyPatch) -> None:
    no_model.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    no_model.setenv("OPENAI_API_KEY", "sk-fallback")
    no_model.setenv("OPENAI_MODEL", "qwen2.5-coder")
    settings = Settings()
    assert settings.missing_model_settings() == []
    assert settings.openai_base_url == "http://127.0.0.1:11434/v1"
    assert settings.model == "qwen2.5-coder"
    # The SANDLOT_ names win; an empty one means unset, with no fallback.
    no_model.setenv("SANDLOT_OPENAI_BASE_URL", "http://127.0.0.1:8001/v1")
    no_model.setenv("SANDLOT_MODEL", "")
    settings = Settings()
    assert settings.openai_base_url == "http://127.0.0.1:8001/v1"
    assert settings.missing_model_settings() == ["SANDLOT_MODEL"]


def test_the_model_key_is_secret(no_model: pytest.MonkeyPatch) -> None:
    no_model.setenv("SANDLOT_OPENAI_API_KEY", "sk-very-secret")
    settings = Settings()
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SANDLOT_OPENAI_BASE_URL", "127.0.0.1:11434/v1", "http:// or https://"),
        ("SANDLOT_GENERATE_ATTEMPTS", "9", "SANDLOT_MAX_GENERATE_ATTEMPTS allows at most 5"),
        ("SANDLOT_MODEL_TIMEOUT_MS", "10", "greater than or equal to 1000"),
    ],
)
def test_bad_model_settings_fail_at_start_up(
    no_model: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    no_model.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("", (), id="unset-is-closed"),
        pytest.param("127.0.0.0/8", ("127.0.0.0/8",), id="one"),
        pytest.param("127.0.0.0/8, fd00::/8", ("127.0.0.0/8", "fd00::/8"), id="commas"),
        pytest.param('["10.0.0.0/8"]', ("10.0.0.0/8",), id="json"),
    ],
)
def test_private_networks_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("SANDLOT_EGRESS_PRIVATE_NETWORKS", value)
    assert tuple(map(str, Settings().egress_private_networks)) == expected


def test_private_networks_default_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDLOT_EGRESS_PRIVATE_NETWORKS", raising=False)
    assert Settings().egress_private_networks == ()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("10.0.0.1/8", "host bits", id="host-bits"),
        pytest.param("metadata", "CIDR", id="not-a-network"),
        pytest.param("[10", "not JSON", id="bad-json"),
    ],
)
def test_bad_private_networks_fail_at_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("SANDLOT_EGRESS_PRIVATE_NETWORKS", value)
    with pytest.raises(ValidationError, match=f"SANDLOT_EGRESS_PRIVATE_NETWORKS.*{problem}"):
        Settings()


def test_runs_per_worker_is_sized_and_settable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDLOT_RUNS_PER_WORKER", raising=False)
    assert 1 <= Settings().runs_per_worker <= 64
    monkeypatch.setenv("SANDLOT_RUNS_PER_WORKER", "3")
    assert Settings().runs_per_worker == 3
    monkeypatch.setenv("SANDLOT_RUNS_PER_WORKER", "0")
    with pytest.raises(ValidationError, match="runs_per_worker"):
        Settings()


def test_a_replica_needs_a_base_url_and_the_shared_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDLOT_REPLICA_URL", "http://10.0.0.5:8000")
    with pytest.raises(ValidationError, match="the same on every replica"):
        Settings()
    monkeypatch.setenv("SANDLOT_ADMIN_KEY", "a" * 32)
    monkeypatch.setenv("SANDLOT_SECRETS_KEY", "e8Q0qZ6cQ7oWkq0nQbq8gTH5Bm0R6gW3nQp3c2VnL1o=")
    assert Settings().replica_url == "http://10.0.0.5:8000"
    for bad in ("10.0.0.5:8000", "http://10.0.0.5:8000/api", "ftp://host"):
        monkeypatch.setenv("SANDLOT_REPLICA_URL", bad)
        with pytest.raises(ValidationError, match="SANDLOT_REPLICA_URL must be a base URL"):
            Settings()
    monkeypatch.setenv("SANDLOT_REPLICA_URL", "http://10.0.0.5:8000")
    monkeypatch.setenv("SANDLOT_REPLICA_LOST_MS", "1500")
    with pytest.raises(ValidationError, match="at least twice"):
        Settings()
