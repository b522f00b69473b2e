"""Worker bundles: parsed once, cached by content address within a byte budget."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from app.dispatch import BundleCache, WorkerBundle
from app.store import ArtifactStore


def _bundle(text: str, bytecode: bool = True) -> bytes:
    body: dict[str, object] = {
        "format": 2 if bytecode else 1,
        "main_module": "main.py",
        "modules": {"main.py": text},
        "requirements": ["requests"],
    }
    if bytecode:
        body["bytecode"] = {"__pycache__/main.x.pyc": base64.b64encode(b"\x00pyc").decode()}
    return json.dumps(body).encode()


def test_parse_gives_sources_and_bytecode() -> None:
    parsed = WorkerBundle.parse(_bundle("x = 1"))
    assert parsed.files == {"main.py": b"x = 1", "__pycache__/main.x.pyc": b"\x00pyc"}
    assert (parsed.main_module, parsed.requirements) == ("main.py", ("requests",))
    assert WorkerBundle.parse(_bundle("x = 1", bytecode=False)).files == {"main.py": b"x = 1"}


def test_the_cache_reads_each_artifact_once_and_keeps_to_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = ArtifactStore(tmp_path)
    shas = [artifacts.put(_bundle(f"x = {'1' * 100}{n}"))[0] for n in range(3)]
    reads: list[str] = []
    real_get = artifacts.get

    def counting_get(sha256: str) -> bytes:
        reads.append(sha256)
        return real_get(sha256)

    monkeypatch.setattr(artifacts, "get", counting_get)
    size = len(real_get(shas[0]))
    cache = BundleCache(artifacts, budget_bytes=2 * size)

    async def scenario() -> None:
        first = await cache.get(shas[0])
        assert await cache.get(shas[0]) is first
        await cache.get(shas[1])
        await cache.get(shas[0])  # now the most recently used
        await cache.get(shas[2])  # over budget: shas[1] goes
        await cache.get(shas[0])
        await cache.get(shas[1])

    asyncio.run(scenario())
    assert reads == [shas[0], shas[1], shas[2], shas[1]]
