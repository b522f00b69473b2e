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


@pytest.mark.parametrize(
    ("files", "field", "other"),
    [
        pytest.param(["a", "a/b"], "files.a/b", "'a'", id="file-then-dir"),
        pytest.param(["a/b", "a"], "files.a/b", "'a'", id="dir-then-file"),
        pytest.param(["x/y/z", "x/y"], "files.x/y/z", "'x/y'", id="nested"),
        pytest.param(["x", "x/y/z"], "files.x/y/z", "'x'", id="grandparent"),
    ],
)
def test_a_path_cannot_be_both_file_and_directory(files: list[str], field: str, other: str) -> None:
    # Issue 11, finding 11: {"a": ..., "a/b": ...} crashed the wasmtime worker process.
    with pytest.raises(InvalidJob) as info:
        Job(code="1", files=dict.fromkeys(files, b"x"))
    assert info.value.field == field
    assert other in info.value.message and repr(field.removeprefix("files.")) in info.value.message


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(["a", "ab/c"], id="prefix-not-a-directory"),
        pytest.param(["a/b", "a/c", "a/d/e"], id="siblings"),
        pytest.param(["A", "a/b"], id="case-differs"),
    ],
)
def test_paths_that_share_only_directories_are_fine(files: list[str]) -> None:
    Job(code="1", files=dict.fromkeys(files, b"x"))


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("a/./b", id="dot-inside"),
        pytest.param("a//b", id="double-slash"),
        pytest.param("a/b/", id="trailing-slash-nested"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param("é" * 128, id="part-over-255-bytes"),
        pytest.param("d/" + "é" * 128, id="nested-part-over-255-bytes"),
    ],
)
def test_other_spellings_are_refused(path: str) -> None:
    with pytest.raises(InvalidJob) as info:
        Job(code="1", files={path: b"x"})
    # The field is echoed in JSON error bodies, so it must be encodable.
    info.value.field.encode("utf-8")
    assert "relative path" in info.value.message
