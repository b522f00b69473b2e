"""What a caller asks a runner to do: one ``Job`` per run."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sandbox.egress import EgressPolicy
from sandbox.limits import Limits
from sandbox.outputs import MAX_PATTERNS, FileCaps, check_pattern

__all__ = ["InvalidJob", "Job", "check_relative_path"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_FILES = 256
_MAX_REQUIREMENTS = 50
_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")


class InvalidJob(ValueError):
    """A job field is invalid; ``field`` names it (``code``, ``files.<path>``, ``env.<name>``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Job:
    """One run of untrusted code.

    Attributes:
        code: Python source, executed as ``main.py`` in a fresh interpreter.
        limits: resource limits; ``code_bytes`` is checked here.
        egress: who the code may reach over HTTP (default: nobody).
        stdin: what ``input()`` and ``sys.stdin`` read; None means EOF at once.
        files: relative path → content, written into the run's working
            directory before it starts. No absolute paths, no ``..``, and no
            path that is both a file and a directory (``a`` and ``a/b``).
        env: the whole environment the code sees (``os.environ``).
        requirements: names of installed pure-Python packages to load first
            (engines that support packages only).
        result_bytes: the most the trailing value's repr and JSON may take.
        figure_format: ``png`` or ``svg``: how matplotlib figures come back.
        return_files: globs over the work dir (``*.csv``, ``charts/**/*.png``); the
            matching files come back after the run, within ``file_caps``.
        file_caps: bytes in all, bytes per file and files listed for ``return_files``.
        live_output: whether someone follows the output as the run goes (an SSE stream):
            then it is sent line by line; without, an engine may hold it until the end
            (the data-stack guest does: a WASI write per line cost ~40 us).

    Raises:
        InvalidJob: naming the field (``code``, ``files.<path>``, ``env.<name>``,
            ``return_files[<i>]``).
    """

    code: str
    limits: Limits = field(default_factory=Limits)
    egress: EgressPolicy = field(default_factory=lambda: EgressPolicy(allowed_hosts=()))
    stdin: str | None = None
    files: Mapping[str, bytes] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    requirements: tuple[str, ...] = ()
    result_bytes: int = 64 * 1024
    figure_format: str = "png"
    return_files: tuple[str, ...] = ()
    file_caps: FileCaps = field(default_factory=FileCaps)
    live_output: bool = True

    def __post_init__(self) -> None:
        size = len(self.code.encode("utf-8", errors="surrogatepass"))
        if size > self.limits.code_bytes:
            raise InvalidJob(
                "code", f"is {size} bytes; this server allows {self.limits.code_bytes}"
            )
        if "\x00" in self.code:
            raise InvalidJob("code", "contains a NUL character")
        if len(self.files) > _MAX_FILES:
            raise InvalidJob("files", f"has {len(self.files)} entries; at most {_MAX_FILES}")
        for path in self.files:
            try:
                check_relative_path(path)
            except ValueError as exc:
                # The field is echoed in JSON errors: it must be encodable text itself.
                shown = path.encode("utf-8", "backslashreplace").decode("utf-8")
                raise InvalidJob(f"files.{shown}", str(exc)) from None
        _check_no_file_is_a_directory(self.files)
        for name, value in self.env.items():
            if not _ENV_NAME.match(name):
                raise InvalidJob(f"env.{name}", "names must match [A-Za-z_][A-Za-z0-9_]*")
            if "\x00" in value:
                raise InvalidJob(f"env.{name}", "contains a NUL character")
        if not 1 <= self.result_bytes <= 64 * 1024 * 1024:
            raise InvalidJob("result_bytes", "must be between 1 byte and 64 MiB")
        if len(self.requirements) > _MAX_REQUIREMENTS:
            raise InvalidJob("requirements", f"at most {_MAX_REQUIREMENTS} packages")
        for name in self.requirements:
            if not _PACKAGE_NAME.match(name):
                raise InvalidJob("requirements", f"{name!r} is not a package name")
        if self.figure_format not in ("png", "svg"):
            raise InvalidJob("figure_format", "must be 'png' or 'svg'")
        if len(self.return_files) > MAX_PATTERNS:
            raise InvalidJob("return_files", f"at most {MAX_PATTERNS} patterns")
        for index, pattern in enumerate(self.return_files):
            try:
                check_pattern(pattern)
            except ValueError as exc:
                raise InvalidJob(f"return_files[{index}]", str(exc)) from None
        object.__setattr__(self, "return_files", tuple(self.return_files))
        object.__setattr__(self, "requirements", tuple(self.requirements))
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))


def check_relative_path(path: str) -> None:
    """Raise ValueError unless ``path`` is a plain relative path inside the work dir."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in ("", ".", "..") for part in parts)
        or len(path) > 255
        or not _fits_file_system(parts)
    ):
        raise ValueError(
            f"{path!r} must be a relative path like 'data/input.csv' "
            "(no leading '/', no '.' or '..' parts, no empty parts or trailing '/', "
            "no backslashes, valid Unicode, at most 255 characters and 255 UTF-8 bytes a part)"
        )


def _fits_file_system(parts: list[str]) -> bool:
    # A lone surrogate (JSON allows "\ud800") can't be a file name, and Linux refuses a
    # name over 255 bytes (ENAMETOOLONG), which 255 characters of 'é' would be.
    try:
        return all(len(part.encode("utf-8")) <= 255 for part in parts)
    except UnicodeEncodeError:
        return False


def _check_no_file_is_a_directory(files: Mapping[str, bytes]) -> None:
    """Raise InvalidJob if one path is a file and also a directory of another (``a``, ``a/b``).

    Writing both would fail half-way through seeding the work dir, whatever the order.
    Paths are already checked, so plain string prefixes are directory prefixes.
    """
    for path in sorted(files):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory in files:
                raise InvalidJob(
                    f"files.{path}",
                    f"{directory!r} is a file, so it can't also be the directory of {path!r}; "
                    "rename one of the two",
                )
