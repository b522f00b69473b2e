"""The artifact bundle: what a worker's build stores, written and read only here.

A bundle is canonical JSON (sorted keys, no spaces), so identical uploads make
identical bytes and share one content-addressed artifact (app/store/blobs.py)::

    {"format": 2, "runtime": ..., "main_module": "main.py", "modules": {path: source},
     "requirements": [...], "bytecode": {"__pycache__/main.<tag>.pyc": base64}}

Format 1 bundles (older builds) have no bytecode; they still read.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import OrderedDict
from dataclasses import dataclass

from app.store import ArtifactStore

__all__ = ["FORMAT", "BundleCache", "WorkerBundle", "read_modules", "write_bundle"]

FORMAT = 2


def write_bundle(
    *,
    runtime: str,
    main_module: str,
    modules: dict[str, str],
    requirements: list[str],
    bytecode: dict[str, str],
) -> bytes:
    """The bundle of a build; ``bytecode`` maps .pyc paths to base64."""
    return json.dumps(
        {
            "format": FORMAT,
            "runtime": runtime,
            "main_module": main_module,
            "modules": modules,
            "requirements": requirements,
            "bytecode": bytecode,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def read_modules(raw: bytes) -> dict[str, str]:
    """The sources of a bundle, by path."""
    modules: dict[str, str] = json.loads(raw)["modules"]
    return modules


@dataclass(frozen=True, slots=True)
class WorkerBundle:
    """A built worker, ready to become a run's files: what an artifact holds, parsed."""

    main_module: str
    requirements: tuple[str, ...]
    files: dict[str, bytes]
    size: int

    @classmethod
    def parse(cls, raw: bytes) -> WorkerBundle:
        """The sources and the bytecode its build made (format 1 bundles have none)."""
        bundle = json.loads(raw)
        files = {name: source.encode() for name, source in bundle["modules"].items()}
        for name, data in bundle.get("bytecode", {}).items():
            files[name] = base64.b64decode(data)
        return cls(
            main_module=bundle["main_module"],
            requirements=tuple(bundle.get("requirements", ())),
            files=files,
            size=len(raw),
        )


class BundleCache:
    """Parsed bundles by sha256, least recently used out first, within a byte budget.

    Artifacts are content-addressed, so an entry is never stale; the cache saves
    each dispatch a file read, a thread hop, JSON parsing and base64 decoding.
    """

    def __init__(self, artifacts: ArtifactStore, budget_bytes: int = 64 * 1024 * 1024) -> None:
        self._artifacts = artifacts
        self._budget = budget_bytes
        self._used = 0
        self._entries: OrderedDict[str, WorkerBundle] = OrderedDict()

    def forget(self, sha256: str) -> None:
        """Drop the bundle (its artifact was deleted)."""
        dropped = self._entries.pop(sha256, None)
        if dropped is not None:
            self._used -= dropped.size

    async def get(self, sha256: str) -> WorkerBundle:
        found = self._entries.get(sha256)
        if found is not None:
            self._entries.move_to_end(sha256)
            return found
        bundle = WorkerBundle.parse(await asyncio.to_thread(self._artifacts.get, sha256))
        if bundle.size <= self._budget:
            self._entries[sha256] = bundle
            self._used += bundle.size
            while self._used > self._budget:
                _, dropped = self._entries.popitem(last=False)
                self._used -= dropped.size
        return bundle
