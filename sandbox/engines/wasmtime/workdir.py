"""A run's working directory (``/work`` in the guest): seeded with its files, emptied after."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandbox.jobs import check_relative_path

__all__ = ["empty_dir", "seed_files"]


def seed_files(workdir: Path, files: Mapping[str, bytes]) -> dict[str, Any] | None:
    """Write the job's files into the workdir; an error outcome naming the file on failure.

    Job already refused what it can foresee (``a`` beside ``a/b``); whatever the file system
    still refuses (a full disk, a name it won't take) ends the run, never the worker.
    """
    for name, content in files.items():
        try:
            check_relative_path(name)
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return {
                "status": "error",
                "error": {
                    "type": type(exc).__name__,
                    "message": f"files.{name}: could not be written to the working directory "
                    f"({reason})",
                    "traceback": "",
                },
            }
    return None


def empty_dir(path: Path) -> None:
    """Remove everything inside ``path`` (the guest may have made anything there)."""
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
