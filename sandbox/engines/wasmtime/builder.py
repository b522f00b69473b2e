"""Build the wasmtime engine's guest: a pre-initialised CPython 3.14 component.

Steps, each cached by a key over its inputs:

1. The standard library the component was built against is extracted from
   componentize-py's native library (it ships there as a zstd-compressed tar)
   into ``stdlib/<componentize-py version>-<format>/python``. The guest mounts
   it read-only at ``/python`` for modules that are not in the snapshot, with
   the pinned ``tzdata`` package beside it for ``zoneinfo`` (``tzdata.py``).
2. The guest app (``guest/``) plus a generated list of stdlib modules to
   pre-import is turned into a component by ``componentize-py``. The key
   covers the guest sources, the componentize-py version and this builder's
   format version.
3. The component is compiled by wasmtime into ``.cwasm`` (a ``.cwasm`` loads
   only into an engine with the same config and wasmtime version, so both are
   part of its key).
4. The standard library's ``.pyc`` files are compiled *inside the guest* (the
   host's Python has another bytecode magic number), as unchecked hash-based
   pycs, so lazy imports don't parse source.

Run ``python -m sandbox.engines.wasmtime --artifacts DIR``; the service
loads what this wrote and never compiles on the request path.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.engines.filelock import locked
from sandbox.engines.wasmtime import host
from sandbox.engines.wasmtime.tzdata import install_tzdata
from sandbox.errors import BuildError, EngineUnavailable

__all__ = ["Artifacts", "build", "locate"]

log = logging.getLogger(__name__)

BUILD_FORMAT = "6"
GUEST_DIR = Path(__file__).parent / "guest"
# Guest-side Python every engine shares: the sandlot module and job execution.
SHARED_GUEST_DIR = Path(__file__).parent.parent.parent / "guest"
# The guest imported the stdlib from /python/<module>.py at build time, so it
# is mounted the same way at run time (lazy imports and tracebacks find it).
STDLIB_SUBDIR = Path("python")

# Modules never pre-imported: test suites, GUIs, modules whose import has side
# effects (printing, opening a browser, starting a REPL), and CLI entry points.
_SKIP_PREFIXES = (
    "test",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "ensurepip",
    "pydoc_data",
    "antigravity",
    "this",
    "__hello__",
    "__phello__",
    "_pyrepl",
    "lib2to3",
    "venv",
)


@dataclass(frozen=True, slots=True)
class Artifacts:
    """Paths of a built guest: everything a worker process needs to run jobs."""

    key: str
    component: Path
    precompiled: Path
    stdlib: Path  # holds the markers; the guest mounts stdlib / "python" at /python

    @property
    def stdlib_mount(self) -> Path:
        return self.stdlib / STDLIB_SUBDIR

    def check(self) -> None:
        """Raise EngineUnavailable naming whatever is missing."""
        for path in (self.component, self.precompiled, self.stdlib / ".complete"):
            if not path.exists():
                raise EngineUnavailable(
                    f"wasmtime guest artifact {path} is missing; run `make build` "
                    "(python -m sandbox.engines.wasmtime)"
                )


def componentize_py_version() -> str:
    try:
        return importlib.metadata.version("componentize-py")
    except importlib.metadata.PackageNotFoundError as exc:
        raise EngineUnavailable(
            "componentize-py is not installed; install the project with its 'build' extra"
        ) from exc


def guest_key() -> str:
    """Hash of everything that goes into the component."""
    digest = hashlib.sha256()
    digest.update(f"format={BUILD_FORMAT};componentize-py={componentize_py_version()}".encode())
    for root in (SHARED_GUEST_DIR, GUEST_DIR):
        for path in sorted(_guest_sources(root)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def locate(artifact_dir: Path) -> Artifacts:
    """The artifacts for the current guest sources and wasmtime (not checked to exist)."""
    key = guest_key()
    root = artifact_dir / "wasmtime"
    return Artifacts(
        key=key,
        component=root / f"guest-{key}.wasm",
        precompiled=root / f"guest-{key}-{host.engine_fingerprint()}.cwasm",
        stdlib=root / "stdlib" / f"{componentize_py_version()}-{BUILD_FORMAT}",
    )


def build(artifact_dir: Path, *, force: bool = False) -> Artifacts:
    """Build whatever is missing or stale; return the artifacts. Idempotent.

    Raises:
        BuildError: componentize-py or wasmtime failed; the message has their output.
        EngineUnavailable: componentize-py is not installed.
    """
    artifacts = locate(artifact_dir)
    root = artifact_dir / "wasmtime"
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / ".lock"):
        if force or not (artifacts.stdlib / ".complete").exists():
            _extract_stdlib(artifacts.stdlib, root / "wheels")
        if force or not artifacts.component.exists():
            _componentize(artifacts)
        if force or not artifacts.precompiled.exists():
            _precompile(artifacts)
        if force or not (artifacts.stdlib / ".pyc-complete").exists():
            _compile_stdlib_bytecode(artifacts)
        _remove_stale(root, artifacts)
    artifacts.check()
    return artifacts


def _guest_sources(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".wit"):
            yield path


def _stdlib_tar() -> bytes:
    """Find the standard library tar that componentize-py embeds in its native library."""
    import componentize_py
    import zstandard  # build-time dependency only

    native = next(Path(componentize_py.__file__).parent.glob("componentize_py*.so"), None)
    if native is None:
        raise BuildError("componentize-py's native library was not found")
    data = native.read_bytes()
    magic = b"\x28\xb5\x2f\xfd"
    start = data.find(magic)
    while start != -1:
        try:
            chunk = zstandard.ZstdDecompressor().decompressobj().decompress(data[start:])
        except zstandard.ZstdError:
            chunk = b""
        if chunk[257:262] == b"ustar":
            with tarfile.open(fileobj=io.BytesIO(chunk)) as archive:
                names = set(archive.getnames())
            if {"json/__init__.py", "asyncio/__init__.py", "os.py"} <= names:
                return chunk
        start = data.find(magic, start + 1)
    raise BuildError(
        f"no standard library archive found in {native.name}; this componentize-py "
        f"version ({componentize_py_version()}) is not supported by the builder"
    )


def _extract_stdlib(target: Path, wheel_cache: Path) -> None:
    log.info("extracting the guest standard library to %s", target)
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".stdlib-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(_stdlib_tar())) as archive:
            archive.extractall(staging / STDLIB_SUBDIR, filter="data")
            names = archive.getnames()
        # zoneinfo's fallback when there is no /usr/share/zoneinfo (never pre-imported).
        install_tzdata(wheel_cache, staging / STDLIB_SUBDIR)
        (staging / "modules.json").write_text(json.dumps(_preload_modules(names)))
        (staging / ".complete").write_text("")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("standard library extracted in %.1f s", time.monotonic() - started)


def _preload_modules(names: list[str]) -> list[str]:
    modules = set()
    for name in names:
        if not name.endswith(".py"):
            continue
        parts = name[:-3].split("/")
        if parts[-1] == "__init__":
            parts.pop()
        if not parts or parts[-1] == "__main__" or parts[0].startswith(_SKIP_PREFIXES):
            continue
        if any(part.startswith("test") for part in parts):
            continue
        modules.add(".".join(parts))
    return sorted(modules)


def _componentize(artifacts: Artifacts) -> None:
    log.info("building the guest component %s (componentize-py)", artifacts.component.name)
    started = time.monotonic()
    modules = json.loads((artifacts.stdlib / "modules.json").read_text())
    with tempfile.TemporaryDirectory(prefix="sandlot-guest-") as tmp:
        staging = Path(tmp) / "guest"
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(SHARED_GUEST_DIR, staging, ignore=ignore)
        shutil.copytree(GUEST_DIR, staging, ignore=ignore, dirs_exist_ok=True)
        (staging / "_sandlot_preload.py").write_text(
            '"""Generated by sandbox.engines.wasmtime.builder."""\n\nMODULES = '
            + json.dumps(modules, indent=0)
            + "\n"
        )
        output = Path(tmp) / "guest.wasm"
        command = [
            _componentize_py_command(),
            "-q",
            "-d",
            str(staging / "wit"),
            "-w",
            "sandbox",
            "componentize",
            "-p",
            str(staging),
            "app",
            "-o",
            str(output),
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
        except subprocess.CalledProcessError as exc:
            raise BuildError(f"componentize-py failed:\n{exc.stderr or exc.stdout}") from exc
        except subprocess.TimeoutExpired as exc:
            raise BuildError("componentize-py did not finish within 600 s") from exc
        artifacts.component.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(output, artifacts.component)
    log.info(
        "component built in %.1f s (%.1f MB)",
        time.monotonic() - started,
        artifacts.component.stat().st_size / 1e6,
    )


def _componentize_py_command() -> str:
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("componentize-py")
    if found is None:
        raise EngineUnavailable("the componentize-py command was not found")
    return found


def _precompile(artifacts: Artifacts) -> None:
    log.info("compiling the component with wasmtime %s", host.wasmtime_version())
    started = time.monotonic()
    serialized = host.precompile(artifacts.component)
    tmp = artifacts.precompiled.with_suffix(".tmp")
    tmp.write_bytes(serialized)
    tmp.rename(artifacts.precompiled)
    log.info("compiled in %.1f s", time.monotonic() - started)


# Run inside the guest at build time (never imported on the host): writes the mounted
# stdlib's bytecode with the guest's own magic number.
_COMPILE_STDLIB = (Path(__file__).parent / "guest_tasks" / "compile_stdlib.py").read_text()


def _compile_stdlib_bytecode(artifacts: Artifacts) -> None:
    log.info("compiling the standard library's bytecode inside the guest")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sandlot-build-") as workdir:
        runtime = host.GuestRuntime(
            artifacts.precompiled, artifacts.stdlib_mount, Path(workdir), stdlib_writable=True
        )
        try:
            outcome = runtime.run_simple(_COMPILE_STDLIB, cpu_ms=600_000, wall_ms=600_000)
        finally:
            runtime.close()
    if outcome.status != "ok":
        raise BuildError(f"compiling the guest stdlib failed: {outcome.status} {outcome.detail}")
    (artifacts.stdlib / ".pyc-complete").write_text(outcome.stdout)
    log.info("bytecode compiled in %.1f s (%s)", time.monotonic() - started, outcome.stdout.strip())


def _remove_stale(root: Path, current: Artifacts) -> None:
    keep = {current.component.name, current.precompiled.name}
    for path in root.glob("guest-*"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
    for path in (root / "stdlib").iterdir():
        if path != current.stdlib:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--artifacts", type=Path, required=True, help="artifact directory")
    parser.add_argument("--force", action="store_true", help="rebuild everything")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        artifacts = build(args.artifacts, force=args.force)
    except (BuildError, EngineUnavailable) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    print(f"wasmtime guest ready: {artifacts.precompiled}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
