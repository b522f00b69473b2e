"""sandbox/engines/wasmtime/builder.py: cache keys, artifacts, failures translated."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import BuildError, EngineUnavailable
from sandbox.engines.wasmtime import Artifacts, builder


def test_artifacts_exist_and_the_key_covers_the_guest_sources(artifacts: Artifacts) -> None:
    artifacts.check()
    assert artifacts.key == builder.guest_key()
    assert artifacts.key in artifacts.precompiled.name
    assert (artifacts.stdlib_mount / "json" / "__init__.py").exists()
    assert list((artifacts.stdlib_mount / "json" / "__pycache__").glob("*.pyc"))


def test_build_is_a_no_op_when_nothing_changed(artifacts: Artifacts) -> None:
    before = artifacts.precompiled.stat().st_mtime_ns
    again = builder.build(artifacts.precompiled.parent.parent)
    assert again == artifacts
    assert artifacts.precompiled.stat().st_mtime_ns == before


def test_missing_artifacts_say_how_to_build_them(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="make build"):
        builder.locate(tmp_path).check()


def test_componentize_failure_becomes_build_error(
    artifacts: Artifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builder, "_componentize_py_command", lambda: "false")
    target = Artifacts(
        key="x",
        component=tmp_path / "guest.wasm",
        precompiled=tmp_path / "guest.cwasm",
        stdlib=artifacts.stdlib,
    )
    with pytest.raises(BuildError, match="componentize-py failed"):
        builder._componentize(target)
