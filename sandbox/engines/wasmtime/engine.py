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
    "DEFAULT_FUEL_PER_MS",
    "engine_fingerprint",
    "make_engine",
    "precompile",
    "wasmtime_version",
]

# Fuel units per millisecond of guest CPU time. Measured by
# bench/fuel_calibration.py on the development machines (docs/engines.md):
# CPython workloads burn 6-12e6 units per ms, median about 7.8e6.
DEFAULT_FUEL_PER_MS = 8_000_000


def _config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.wasm_component_model = True
    config.consume_fuel = True
    config.epoch_interruption = True
    return config


# Everything _config() sets, for cache keys: a .cwasm loads only into an
# engine with the same configuration and wasmtime version.
_CONFIG_DESCRIPTION = "component-model;consume-fuel;epoch-interruption"


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
