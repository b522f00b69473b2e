"""Pure-Python packages for the Pyodide engine: resolved ahead, loaded offline.

Installing (``python -m sandbox.engines.pyodide.packages add NAME...``, run by
``make build`` for ``pyodide-runtime/packages.txt``) asks pip for wheels any
platform can run (``py3-none-any``) with their dependencies, keeps them in the
artifact directory, and adds them to our own Pyodide lock file with
pyodide-build. A compiled package (numpy, ...) has no such wheel and is
refused with its name.

At run time nothing is downloaded: a run's ``requirements`` must already be
in the lock file (:func:`check_requirements` says which are missing), and the
worker loads them from local files.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import BuildError, EngineUnavailable

__all__ = [
    "LockFilePackages",
    "PackageError",
    "check_requirements",
    "install",
    "installed",
    "normalize",
]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
# A name with optional extras and version specifiers; no URLs, paths or options.
_REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?([<>=!~]=?[^\s;@/]+)*$"
)
_PIP_MISSING = re.compile(r"No matching distribution found for ([^\s]+)")


class PackageError(BuildError):
    """A package could not be installed; ``names`` says which."""

    def __init__(self, message: str, names: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.names = tuple(names)


def normalize(name: str) -> str:
    """PEP 503 normalised name (``Foo_Bar`` → ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(lock_file: Path) -> dict[str, str]:
    """Normalised name → version of every package in our lock file."""
    try:
        packages = json.loads(lock_file.read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return {}
    return {normalize(name): str(entry.get("version", "")) for name, entry in packages.items()}


def check_requirements(requirements: Iterable[str], lock_file: Path) -> list[str]:
    """The requirements (names) that are malformed or not installed; [] when all are."""
    available = installed(lock_file)
    return [
        name for name in requirements if not _NAME.match(name) or normalize(name) not in available
    ]


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
    bad = [name for name in requirements if not _REQUIREMENT.match(name)]
    if bad:
        raise PackageError(f"not a requirement: {', '.join(map(repr, bad))}", bad)
    if not requirements:
        return sorted(installed(lock_file))
    wheel_dir = lock_file.parent
    with tempfile.TemporaryDirectory(prefix="sandlot-wheels-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--platform=any",
            "--implementation=py",
            "--abi=none",
            "--python-version=3.14",
            f"--dest={tmp}",
            *(f"--find-links={path}" for path in find_links),
            *(["--no-index"] if no_index else []),
            *requirements,
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
        except subprocess.CalledProcessError as exc:
            missing = _PIP_MISSING.findall(exc.stderr or "")
            raise PackageError(
                f"no pure-Python wheel for {', '.join(missing) or ' '.join(requirements)}: "
                "Pyodide runs only py3-none-any wheels (compiled packages like numpy are not "
                f"on the registry for its ABI), or the package does not exist.\n{exc.stderr}",
                missing,
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise PackageError("pip took over 600 s to resolve the packages") from exc
        wheels = sorted(Path(tmp).glob("*.whl"))
        for wheel in wheels:
            shutil.copy2(wheel, wheel_dir / wheel.name)
    _add_to_lock(lock_file, [wheel_dir / wheel.name for wheel in wheels])
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
    requirements = list(args.requirements)
    for path in args.requirements_file:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                requirements.append(line)
    try:
        names = install(requirements, lock_file, find_links=args.find_links, no_index=args.no_index)
    except (PackageError, EngineUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"installed: {', '.join(names) or '(none)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
