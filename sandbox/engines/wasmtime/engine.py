"""The wasmtime engine's configuration, shared by both guests' hosts and the builders.

A precompiled ``.cwasm`` loads only into an engine with the same configuration and
wasmtime version: :func:`engine_fingerprint` keys the build caches on both.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import wasmtime
from wasmtime import component as wc

__all__ = [
    "engine_fingerprint",
    "make_engine",
    "precompile",
    "wasmtime_version",
]


def _config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.wasm_component_model = True
    # No fuel: cpu_ms is the run thread's CPU clock (monitor.py); metering every
    # instruction made CPython code 1.25-2x slower (docs/engines.md).
    config.epoch_interruption = True
    return config


# Everything _config() sets, for cache keys: a .cwasm loads only into an
# engine with the same configuration and wasmtime version.
_CONFIG_DESCRIPTION = "component-model;epoch-interruption"


def wasmtime_version() -> str:
    return importlib.metadata.version("wasmtime")


def engine_fingerprint() -> str:
    config_hash = hashlib.sha256(_CONFIG_DESCRIPTION.encode()).hexdigest()[:8]
    return f"wasmtime{wasmtime_version()}-{config_hash}"


def make_engine() -> wasmtime.Engine:
    return wasmtime.Engine(_config())


def precompile(component_path: Path) -> bytes:
    """Compile a component for this wasmtime and config (seconds); return the .cwasm bytes."""
    engine = make_engine()
    compiled = wc.Component.from_file(engine, str(component_path))
    return bytes(compiled.serialize())
