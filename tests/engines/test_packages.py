"""sandbox/engines/packages.py: one resolver of pure-Python wheels for every engine, offline.

Wheels come from a local directory (``--find-links``, ``--no-index``): the same
resolution path as the registry, without leaving the machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.engines import packages
from tests.engines.test_pyodide_packages import make_wheel


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    directory.mkdir()
    make_wheel(directory, "sandlotdemo", "1.2.0", requires=("sandlothelper>=1",))
    make_wheel(directory, "sandlothelper", "1.0.0")
    # Needs a compiled package (only a platform wheel of it exists).
    make_wheel(directory, "sandlotplots", "0.3", requires=("sandlotnum>=2",))
    make_wheel(directory, "sandlotnum", "2.1", tag="cp315-cp315-linux_x86_64")
    make_wheel(directory, "sandlotnew", "1.0", requires=("sandlotnum>=3",))
    return directory


def _download(requirements: list[str], wheels: Path, dest: Path, **kwargs: object) -> list[str]:
    found = packages.download(
        requirements,
        dest,
        python_version="3.15",
        engine="test",
        find_links=[wheels],
        no_index=True,
        **kwargs,  # type: ignore[arg-type]
    )
    return sorted(packages.wheel_name(wheel) for wheel in found)


def test_downloads_a_package_with_its_dependencies(wheels: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    assert _download(["SandlotDemo"], wheels, dest) == ["sandlotdemo", "sandlothelper"]
    assert sorted(p.name for p in dest.iterdir()) == [
        "sandlotdemo-1.2.0-py3-none-any.whl",
        "sandlothelper-1.0.0-py3-none-any.whl",
    ]


def test_a_compiled_dependency_is_refused_unless_the_engine_provides_it(
    wheels: Path, tmp_path: Path
) -> None:
    with pytest.raises(packages.PackageError, match="no pure-Python wheel"):
        _download(["sandlotplots"], wheels, tmp_path / "a")
    found = _download(["sandlotplots"], wheels, tmp_path / "b", provided={"SandlotNum": "2.1"})
    assert found == ["sandlotplots"]  # the provided one is neither needed nor installed


def test_a_provided_package_is_never_downloaded_again(wheels: Path, tmp_path: Path) -> None:
    found = _download(["sandlotdemo"], wheels, tmp_path / "a", provided={"sandlothelper": "1.0.0"})
    assert found == ["sandlotdemo"]


def test_a_dependency_on_another_version_of_a_provided_package_fails(
    wheels: Path, tmp_path: Path
) -> None:
    with pytest.raises(packages.PackageError) as info:
        _download(["sandlotnew"], wheels, tmp_path / "a", provided={"sandlotnum": "2.1"})
    assert "built-in package" in str(info.value)


@pytest.mark.parametrize("requirement", ["-e .", "https://x/y.whl", "../pkg", "a; b"])
def test_anything_but_a_requirement_is_refused(requirement: str, tmp_path: Path) -> None:
    with pytest.raises(packages.PackageError, match="not a requirement"):
        packages.download([requirement], tmp_path, python_version="3.15", engine="test")


def test_check_requirements_names_what_is_missing_or_malformed() -> None:
    installed = {"sandlot-demo": "1", "faker": "40"}
    assert packages.check_requirements(["Sandlot_Demo", "faker"], installed) == []
    assert packages.check_requirements(["faker", "numpy", "a b"], installed) == ["numpy", "a b"]


def test_read_requirements_skips_comments_and_blanks(tmp_path: Path) -> None:
    path = tmp_path / "packages.txt"
    path.write_text("# defaults\nrequests\n\nfaker>=30  # names\n")
    assert packages.read_requirements([path]) == ["requests", "faker>=30"]
