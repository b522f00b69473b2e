"""sandbox/jobs.py: a Job is validated when it is made, and names the bad field."""

from __future__ import annotations

import pytest

from sandbox.jobs import InvalidJob, Job, check_relative_path
from sandbox.limits import Limits


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a\x00b", "x" * 256, "a/"],
    ids=[
        "empty",
        "absolute",
        "dotdot",
        "nested-dotdot",
        "empty-part",
        "dot",
        "backslash",
        "nul",
        "too-long",
        "trailing-slash",
    ],
)
def test_file_paths_must_stay_inside_the_workdir(path: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        check_relative_path(path)


@pytest.mark.parametrize("path", ["a.txt", "data/in.csv", "deep/er/file", ".hidden"])
def test_plain_relative_paths_are_fine(path: str) -> None:
    check_relative_path(path)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"code": "x" * 11, "limits": Limits(code_bytes=10)}, "code"),
        ({"code": "é" * 6, "limits": Limits(code_bytes=10)}, "code"),
        ({"code": "a\x00"}, "code"),
        ({"code": "1", "files": {"../x": b""}}, "files.../x"),
        ({"code": "1", "files": {f"f{i}": b"" for i in range(300)}}, "files"),
        ({"code": "1", "env": {"BAD-NAME": "x"}}, "env.BAD-NAME"),
        ({"code": "1", "env": {"OK": "a\x00"}}, "env.OK"),
    ],
    ids=[
        "code-size",
        "code-size-utf8",
        "code-nul",
        "file-path",
        "too-many-files",
        "env-name",
        "env-nul",
    ],
)
def test_invalid_jobs_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidJob) as info:
        Job(**fields)  # type: ignore[arg-type]
    assert info.value.field == field


def test_job_copies_its_mappings_read_only() -> None:
    files = {"a": b"1"}
    job = Job(code="1", files=files, env={"A": "b"})
    files["b"] = b"2"
    assert dict(job.files) == {"a": b"1"}
    with pytest.raises(TypeError):
        job.env["B"] = "c"  # type: ignore[index]


def test_default_job_may_reach_nobody() -> None:
    assert Job(code="1").egress.allowed_hosts == ()
    assert Job(code="1").egress.private_networks == ()
