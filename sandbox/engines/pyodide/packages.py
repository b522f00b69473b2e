"""Pure-Python packages for the Pyodide engine: resolved ahead, loaded offline.

Installing (``python -m sandbox.engines.pyodide.packages add NAME...``, run by
``make build`` for ``pyodide-runtime/packages.txt``) resolves wheels any platform
can run with the shared resolver (:mod:`sandbox.engines.packages`), keeps them in
the artifact directory, and adds them to our own Pyodide lock file with
pyodide-build. A compiled package (numpy, ...) has no such wheel and is refused
with its name.

At run time nothing is downloaded: a run's ``requirements`` must already be
in the lock file (:func:`check_requirements` says which are missing), and the
worker loads them from local files.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.engines import packages as shared
from sandbox.engines.packages import PackageError, normalize
from sandbox.errors import EngineUnavailable

__all__ = [
    "LockFilePackages",
    "PackageError",
    "check_requirements",
    "install",
    "installed",
    "normalize",
]

log = logging.getLogger(__name__)

PYTHON_VERSION = "3.14"


def installed(lock_file: Path) -> dict[str, str]:
    """Normalised name → version of every package in our lock file."""
    try:
        packages = json.loads(lock_file.read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return {}
    return {normalize(name): str(entry.get("version", "")) for name, entry in packages.items()}


def check_requirements(requirements: Iterable[str], lock_file: Path) -> list[str]:
    """The requirements (names) that are malformed or not installed; [] when all are."""
    return shared.check_requirements(requirements, installed(lock_file))


@dataclass(frozen=True, slots=True)
class LockFilePackages:
    """The engine's answer to "which packages can a job require" (``sandbox.Packages``)."""

    lock_file: Path

    def installed(self) -> dict[str, str]:
        return installed(self.lock_file)

    def missing(self, requirements: Iterable[str]) -> list[str]:
        return check_requirements(requirements, self.lock_file)


def install(
    requirements: Sequence[str],
    lock_file: Path,
    *,
    find_links: Sequence[Path] = (),
    no_index: bool = False,
) -> list[str]:
    """Download pure-Python wheels for ``requirements`` (and their dependencies) and lock them.

    Returns the normalised names now in the lock file. Raises PackageError naming the
    requirement that has no pure-Python wheel or does not exist.
    """
    if not requirements:
        return sorted(installed(lock_file))
    wheels = shared.download(
        requirements,
        lock_file.parent,
        python_version=PYTHON_VERSION,
        engine="pyodide",
        find_links=find_links,
        no_index=no_index,
    )
    _add_to_lock(lock_file, wheels)
    names = sorted(installed(lock_file))
    log.info("Pyodide packages installed: %s", ", ".join(names))
    return names


def _add_to_lock(lock_file: Path, wheels: Sequence[Path]) -> None:
    pyodide = Path(sys.executable).parent / "pyodide"
    if not pyodide.exists():
        raise EngineUnavailable("pyodide-build is not installed (the project's 'build' extra)")
    new_lock = lock_file.with_name("pyodide-lock-new.json")
    command = [
        str(pyodide),
        "lockfile",
        "add-wheels",
        f"--input={lock_file}",
        f"--output={new_lock}",
        f"--base-path={lock_file.parent}",
        *map(str, wheels),
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    except subprocess.CalledProcessError as exc:
        raise PackageError(f"adding wheels to the lock file failed:\n{exc.stderr}") from exc
    new_lock.replace(lock_file)


def main(argv: list[str] | None = None) -> int:
    from sandbox.engines.pyodide import builder

    parser = argparse.ArgumentParser(description="Pure-Python packages for the Pyodide engine")
    parser.add_argument("--artifacts", type=Path, required=True, help="artifact directory")
    parser.add_argument("--runtime", type=Path, required=True, help="the pyodide-runtime dir")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="resolve, download and lock packages")
    add.add_argument("requirements", nargs="*")
    add.add_argument("-r", "--requirements-file", type=Path, action="append", default=[])
    add.add_argument("--find-links", type=Path, action="append", default=[])
    add.add_argument("--no-index", action="store_true")
    sub.add_parser("list", help="what the lock file holds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lock_file = builder.build(args.artifacts, args.runtime).layout.lock_file
    if args.command == "list":
        for name, version in sorted(installed(lock_file).items()):
            print(f"{name}=={version}")
        return 0
    requirements = [*args.requirements, *shared.read_requirements(args.requirements_file)]
    try:
        names = install(requirements, lock_file, find_links=args.find_links, no_index=args.no_index)
    except (PackageError, EngineUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"installed: {', '.join(names) or '(none)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
