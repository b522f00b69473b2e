"""sandbox/engines/pyodide/packages.py: pure-Python wheels into our lock file, offline.

Wheels come from a local directory (``--find-links``, ``--no-index``): the same
resolution path as the registry, without leaving the machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from sandbox.engines.pyodide import PyodideArtifacts, packages


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires: tuple[str, ...] = (),
) -> Path:
    """A minimal, valid wheel with one module ``<name>.py``."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ),
        f"{dist}/top_level.txt": f"{name}\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def lock_file(tmp_path: Path, pyodide_artifacts: PyodideArtifacts) -> Path:
    lock = tmp_path / "packages" / "pyodide-lock.json"
    lock.parent.mkdir()
    upstream = json.loads(pyodide_artifacts.layout.lock_file.read_text())
    lock.write_text(json.dumps({"info": upstream["info"], "packages": {}}))
    return lock


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    directory.mkdir()
    make_wheel(directory, "sandlotdemo", "1.2.0", requires=("sandlothelper>=1",))
    make_wheel(directory, "sandlothelper", "1.0.0")
    make_wheel(directory, "compiledthing", "2.0", tag="cp314-cp314-linux_x86_64")
    return directory


def test_install_resolves_dependencies_and_locks_them(lock_file: Path, wheels: Path) -> None:
    names = packages.install(["sandlotdemo"], lock_file, find_links=[wheels], no_index=True)
    assert names == ["sandlotdemo", "sandlothelper"]
    assert packages.installed(lock_file) == {"sandlotdemo": "1.2.0", "sandlothelper": "1.0.0"}
    entry = json.loads(lock_file.read_text())["packages"]["sandlotdemo"]
    assert entry["depends"] == ["sandlothelper"]
    assert (lock_file.parent / entry["file_name"]).exists()


def test_compiled_only_package_is_refused_by_name(lock_file: Path, wheels: Path) -> None:
    with pytest.raises(packages.PackageError) as info:
        packages.install(["compiledthing"], lock_file, find_links=[wheels], no_index=True)
    assert info.value.names == ("compiledthing",)
    assert "pure-Python" in str(info.value)
    assert packages.installed(lock_file) == {}


def test_unknown_package_is_refused_by_name(lock_file: Path, wheels: Path) -> None:
    with pytest.raises(packages.PackageError) as info:
        packages.install(["no-such-package"], lock_file, find_links=[wheels], no_index=True)
    assert info.value.names == ("no-such-package",)


@pytest.mark.parametrize(
    "requirement", ["--index-url=http://x", "pkg @ file:///etc", "../x", "a b", ""]
)
def test_requirements_must_be_plain_names_and_versions(lock_file: Path, requirement: str) -> None:
    with pytest.raises(packages.PackageError, match="not a requirement"):
        packages.install([requirement], lock_file)


def test_check_requirements_names_what_is_missing(lock_file: Path, wheels: Path) -> None:
    packages.install(["sandlotdemo"], lock_file, find_links=[wheels], no_index=True)
    assert packages.check_requirements(["SandlotDemo", "sandlot_helper"], lock_file) == [
        "sandlot_helper"
    ]
    assert packages.check_requirements(["sandlothelper"], lock_file) == []


def test_make_wheel_helper_builds_installable_wheels(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "w", "0.1")
    shutil.unpack_archive(wheel, tmp_path / "out", "zip")
    assert (tmp_path / "out" / "w.py").read_text() == "VERSION = '0.1'\n"
