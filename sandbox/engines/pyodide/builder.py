"""Build the Pyodide engine's guest: a memory snapshot of a prepared interpreter.

``python -m sandbox.engines.pyodide --artifacts DIR --runtime pyodide-runtime``

1. Our own lock file (``packages/pyodide-lock.json``): Pyodide's, with no
   packages of its own, so nothing can ever be fetched from a CDN; pure-Python
   wheels are added to it explicitly.
2. Our copy of Pyodide's Emscripten loader (``loader-<key>.mjs``, see
   ``loader.py``), which can record and replay how the main module is linked.
3. A cold Pyodide in Deno (``src/snapshot.mjs``), started with that loader,
   gets the guest files (``sandbox/guest/`` and ``pyodide-runtime/py/``),
   imports the common stdlib and installs the glue; its memory is saved as
   ``snapshot-<key>.bin`` and its link plan as ``link-<key>.json``. Every run
   restores a fresh interpreter from the one and links it by the other.

The key covers the guest files, the runtime's JS, the Pyodide and Deno
versions and this builder's format; identical inputs are not rebuilt.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.engines.filelock import locked
from sandbox.engines.pyodide import loader
from sandbox.engines.pyodide.deno import RuntimeLayout, deno_env, snapshot_argv
from sandbox.errors import BuildError, EngineUnavailable

__all__ = ["PyodideArtifacts", "build", "find_deno", "locate"]

log = logging.getLogger(__name__)

BUILD_FORMAT = "2"
SHARED_GUEST_DIR = Path(__file__).parent.parent.parent / "guest"
GUEST_LIB = "/lib/sandlot"
# Imported before the snapshot: what agents reach for first costs nothing per run.
PRELOAD = tuple(
    """
    asyncio base64 bisect calendar collections copy csv dataclasses datetime decimal difflib
    email.message enum fractions functools hashlib heapq html http.client io itertools json
    math operator pathlib pprint random re statistics string struct textwrap time typing
    unicodedata urllib.parse urllib.request uuid xml.etree.ElementTree zlib
    """.split()
)


@dataclass(frozen=True, slots=True)
class PyodideArtifacts:
    key: str
    layout: RuntimeLayout

    def check(self) -> None:
        """Raise EngineUnavailable naming whatever is missing."""
        for path in (*self.layout.built, self.layout.lock_file, self.layout.index_dir):
            if not path.exists():
                raise EngineUnavailable(
                    f"Pyodide engine file {path} is missing; run `make build` "
                    "(npm ci in pyodide-runtime, then python -m sandbox.engines.pyodide)"
                )


def find_deno() -> Path:
    try:
        from deno import find_deno_bin
    except ImportError as exc:
        raise EngineUnavailable("the deno package is not installed") from exc
    return Path(find_deno_bin())


def _versions(runtime_dir: Path) -> str:
    package = runtime_dir / "node_modules" / "pyodide" / "package.json"
    try:
        pyodide_version = json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError) as exc:
        raise EngineUnavailable(
            f"{package} is missing or unreadable: run `npm ci` in {runtime_dir}"
        ) from exc
    return f"pyodide={pyodide_version};deno={importlib.metadata.version('deno')}"


def _guest_files(runtime_dir: Path) -> dict[str, str]:
    """Guest path → source for every file the snapshot needs."""
    files = {}
    for root in (SHARED_GUEST_DIR, runtime_dir / "py"):
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[f"{GUEST_LIB}/{path.relative_to(root).as_posix()}"] = path.read_text()
    return files


def _key(runtime_dir: Path) -> str:
    digest = hashlib.sha256(f"format={BUILD_FORMAT};{_versions(runtime_dir)}".encode())
    for name, text in sorted(_guest_files(runtime_dir).items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    for path in sorted((runtime_dir / "src").glob("*.*js")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(Path(loader.__file__).read_bytes())  # its edits shape the loader
    digest.update(" ".join(PRELOAD).encode())
    return digest.hexdigest()[:24]


def locate(artifact_dir: Path, runtime_dir: Path) -> PyodideArtifacts:
    """The artifacts for the current sources (not checked to exist)."""
    deno = find_deno()
    runtime_dir = runtime_dir.resolve()
    root = artifact_dir.resolve() / "pyodide"
    key = _key(runtime_dir)
    layout = RuntimeLayout(
        deno=deno,
        runtime_dir=runtime_dir,
        snapshot=root / f"snapshot-{key}.bin",
        lock_file=root / "packages" / "pyodide-lock.json",
    )
    return PyodideArtifacts(key=key, layout=layout)


def build(artifact_dir: Path, runtime_dir: Path, *, force: bool = False) -> PyodideArtifacts:
    """Build whatever is missing or stale; return the artifacts. Idempotent.

    Raises:
        BuildError: Deno or Pyodide failed; the message has their output.
        EngineUnavailable: Deno or the Pyodide package is not installed.
    """
    artifacts = locate(artifact_dir, runtime_dir)
    root = artifacts.layout.snapshot.parent
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / ".lock"):
        if force or not artifacts.layout.lock_file.exists():
            _write_lock_file(artifacts.layout)
        layout = artifacts.layout
        if force or not layout.loader.exists():
            loader.write_loader(
                layout.index_dir, layout.runtime_dir / "src" / "fastlink.js", layout.loader
            )
        if force or not (layout.snapshot.exists() and layout.link_plan.exists()):
            _make_snapshot(layout, root / "deno-dir")
        for pattern in ("snapshot-*.bin", "loader-*.mjs", "link-*.json"):
            for stale in root.glob(pattern):
                if stale not in layout.built:
                    stale.unlink(missing_ok=True)
    artifacts.check()
    return artifacts


def _write_lock_file(layout: RuntimeLayout) -> None:
    upstream = json.loads((layout.index_dir / "pyodide-lock.json").read_text())
    lock = {"info": upstream["info"], "packages": {}}
    layout.lock_file.parent.mkdir(parents=True, exist_ok=True)
    layout.lock_file.write_text(json.dumps(lock, indent=1) + "\n")


def _setup_code() -> str:
    return "\n".join(
        [
            "import gc, sys",
            f"sys.path.insert(0, {GUEST_LIB!r})",
            *(f"import {name}" for name in PRELOAD),
            "import _sandlot_pyodide, workers",
            "_sandlot_pyodide.install()",
            "gc.collect()",
        ]
    )


def _make_snapshot(layout: RuntimeLayout, deno_dir: Path) -> None:
    log.info("making the Pyodide snapshot %s", layout.snapshot.name)
    started = time.monotonic()
    deno_dir.mkdir(parents=True, exist_ok=True)
    request = {
        "files": _guest_files(layout.runtime_dir),
        "setup": _setup_code(),
        "lockFile": str(layout.lock_file),
        "loader": str(layout.loader),
    }
    try:
        done = subprocess.run(
            snapshot_argv(layout),
            input=json.dumps(request).encode() + b"\n",
            capture_output=True,
            env=deno_env(deno_dir),
            check=True,
            timeout=300,
        )
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"making the Pyodide snapshot failed:\n{exc.stderr.decode()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise BuildError("making the Pyodide snapshot took over 300 s") from exc
    except OSError as exc:
        raise EngineUnavailable(f"can't run deno: {exc}") from exc
    # One line of JSON (the link plan), then the snapshot's bytes.
    plan, newline, snapshot = done.stdout.partition(b"\n")
    if not newline or not snapshot:
        raise BuildError(f"the snapshot step wrote no snapshot:\n{done.stderr.decode()}")
    for path, data in ((layout.link_plan, plan), (layout.snapshot, snapshot)):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(path)
    log.info(
        "snapshot made in %.1f s (%.1f MB; link plan %.0f kB)",
        time.monotonic() - started,
        len(snapshot) / 1e6,
        len(plan) / 1e3,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Pyodide engine's snapshot")
    parser.add_argument("--artifacts", type=Path, required=True, help="artifact directory")
    parser.add_argument("--runtime", type=Path, required=True, help="the pyodide-runtime dir")
    parser.add_argument("--force", action="store_true", help="rebuild everything")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        artifacts = build(args.artifacts, args.runtime, force=args.force)
    except (BuildError, EngineUnavailable) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    print(f"pyodide snapshot ready: {artifacts.layout.snapshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
