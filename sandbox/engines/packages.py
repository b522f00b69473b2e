"""Pure-Python packages for every engine: one resolver, per-engine installation.

An operator installs packages ahead (``make packages PACKAGES="faker holidays"``;
``make build`` installs each engine's default list). :func:`download` asks pip for
wheels any platform can run (``py3-none-any``) with their dependencies, for the
engine's Python version. What an engine already has compiled in (the data-stack
guest's numpy, pandas, jinja2, ...) is declared as ``provided``: pip must use
exactly those versions (constraints, and a stand-in wheel for each, since
compiled packages have no pure wheel), and their wheels are left out of the
result, so an installed package never shadows or replaces a built-in one.

Each engine installs the wheels its own way (Pyodide: our lock file; the
data-stack guest: a read-only site directory with precompiled bytecode). At
run time nothing is downloaded: a run's ``requirements`` must already be
installed (:func:`check_requirements` says which are missing).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sandbox.errors import BuildError

__all__ = [
    "PackageError",
    "check_requirements",
    "download",
    "normalize",
    "read_requirements",
    "wheel_name",
]

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
# A name with optional extras and version specifiers; no URLs, paths or options.
_REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?([<>=!~]=?[^\s;@/]+)*$"
)
_PIP_MISSING = re.compile(r"No matching distribution found for ([^\s]+)")
_PIP_TIMEOUT_S = 600


class PackageError(BuildError):
    """A package could not be installed; ``names`` says which."""

    def __init__(self, message: str, names: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.names = tuple(names)


def normalize(name: str) -> str:
    """PEP 503 normalised name (``Foo_Bar`` → ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(wheel: Path) -> str:
    """The normalised distribution name of a wheel file (``Foo_Bar-1.0-py3-none-any.whl``)."""
    return normalize(wheel.name.split("-", 1)[0])


def check_requirements(requirements: Iterable[str], installed: Mapping[str, str]) -> list[str]:
    """The requirements (names) that are malformed or not in ``installed``; [] when all are.

    ``installed`` maps normalised names to versions.
    """
    return [
        name for name in requirements if not _NAME.match(name) or normalize(name) not in installed
    ]


def read_requirements(paths: Iterable[Path]) -> list[str]:
    """The requirements of requirements files: one a line, ``#`` starts a comment."""
    found: list[str] = []
    for path in paths:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.append(line)
    return found


def download(
    requirements: Sequence[str],
    dest: Path,
    *,
    python_version: str,
    engine: str,
    provided: Mapping[str, str] | None = None,
    find_links: Sequence[Path] = (),
    no_index: bool = False,
) -> list[Path]:
    """Download pure-Python wheels for ``requirements`` and their dependencies into ``dest``.

    ``python_version`` is the engine's (``"3.15"``); ``provided`` maps the names of
    distributions the engine already has to their versions: pip resolves against exactly
    those, and they are not downloaded. ``engine`` names the engine in error messages.
    Returns the wheels written to ``dest`` (one per distribution). Raises PackageError
    naming a malformed requirement, a package without a pure-Python wheel, or a conflict.
    """
    bad = [name for name in requirements if not _REQUIREMENT.match(name)]
    if bad:
        raise PackageError(f"not a requirement: {', '.join(map(repr, bad))}", bad)
    provided = {normalize(name): version for name, version in (provided or {}).items()}
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sandlot-wheels-") as tmp:
        stand_ins = Path(tmp) / "provided"
        constraints = _stand_ins(provided, stand_ins)
        target = Path(tmp) / "wheels"
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
            f"--python-version={python_version}",
            f"--dest={target}",
            *(
                ["--find-links", str(stand_ins), "--constraint", str(constraints)]
                if provided
                else []
            ),
            *(f"--find-links={path}" for path in find_links),
            *(["--no-index"] if no_index else []),
            *requirements,
        ]
        try:
            subprocess.run(
                command, check=True, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S
            )
        except subprocess.CalledProcessError as exc:
            missing = _PIP_MISSING.findall(exc.stderr or "")
            raise PackageError(
                f"no pure-Python wheel for {', '.join(missing) or ' '.join(requirements)} "
                f"on the {engine} engine: only py3-none-any wheels install there (compiled "
                "packages have no such wheel), the package does not exist, or it needs a "
                "version of a built-in package that the engine does not have.\n"
                + _pip_errors(exc.stderr or ""),
                missing,
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise PackageError(f"pip took over {_PIP_TIMEOUT_S} s to resolve the packages") from exc
        wheels: list[Path] = []
        for wheel in sorted(target.glob("*.whl")):
            if wheel_name(wheel) in provided:
                continue
            final = dest / wheel.name
            final.write_bytes(wheel.read_bytes())
            wheels.append(final)
    return wheels


def _pip_errors(stderr: str) -> str:
    # pip warns once per index location it can't read: keep only what explains the failure.
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("WARNING:"))


def _stand_ins(provided: Mapping[str, str], directory: Path) -> Path:
    """An empty wheel for each provided distribution, and constraints pinning them.

    Compiled packages have no ``py3-none-any`` wheel: without a stand-in, pip would refuse
    anything that depends on numpy. The pins stop it from choosing another version.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, version in sorted(provided.items()):
        stem = f"{name.replace('-', '_')}-{version}"
        with zipfile.ZipFile(directory / f"{stem}-py3-none-any.whl", "w") as wheel:
            info = f"{stem}.dist-info"
            wheel.writestr(
                f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            )
            wheel.writestr(
                f"{info}/WHEEL",
                "Wheel-Version: 1.0\nGenerator: sandlot\nRoot-Is-Purelib: true\n"
                "Tag: py3-none-any\n",
            )
            wheel.writestr(f"{info}/RECORD", "")
        lines.append(f"{name}=={version}")
    constraints = directory / "constraints.txt"
    constraints.write_text("\n".join(lines) + "\n")
    return constraints
