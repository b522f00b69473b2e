"""sandbox/outputs.py and the outcome's outputs: what a guest hands back is checked on the host.

return_files is read on the host from a directory the guest wrote: links the guest made
must never be followed (a link to /etc/passwd, a link to a directory outside).
"""

from __future__ import annotations

import base64
import importlib.util
import os
from pathlib import Path

import pytest

from sandbox import Display, FileCaps, InvalidJob, Job, Status
from sandbox.outcome import OutputMeter, deliver_outputs
from sandbox.outputs import (
    BINARY_DISPLAY_TYPES,
    DISPLAY_TYPES,
    check_display,
    collect_files,
    guest_files,
    matches,
)

GUEST_OUTPUTS = Path(__file__).resolve().parents[2] / "sandbox/guest/sandlot/_outputs.py"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "charts" / "deep").mkdir(parents=True)
    (work / "a.csv").write_text("x,y\n1,2\n")
    (work / "b.txt").write_text("hello")
    (work / "charts" / "c.png").write_bytes(b"\x89PNG fake")
    (work / "charts" / "deep" / "d.png").write_bytes(b"\x89PNG deep")
    return work


def _paths(files: tuple[object, ...]) -> list[str]:
    return [f.path for f in files]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        pytest.param(("*.csv",), ["a.csv"], id="top-level-only"),
        pytest.param(("charts/*.png",), ["charts/c.png"], id="one-dir"),
        pytest.param(("**/*.png",), ["charts/c.png", "charts/deep/d.png"], id="recursive"),
        pytest.param(("*.csv", "*.txt"), ["a.csv", "b.txt"], id="two-patterns"),
        pytest.param(("nothing*",), [], id="no-match"),
    ],
)
def test_globs_pick_files(workdir: Path, patterns: tuple[str, ...], expected: list[str]) -> None:
    assert _paths(collect_files(workdir, patterns, FileCaps())) == expected


def test_a_returned_file_has_its_bytes_size_and_type(workdir: Path) -> None:
    (found,) = collect_files(workdir, ("a.csv",), FileCaps())
    assert found.size == 8 and found.mime_type == "text/csv" and not found.truncated
    assert base64.b64decode(found.data or "") == b"x,y\n1,2\n"


def test_a_symlink_to_a_host_file_is_not_followed(workdir: Path) -> None:
    os.symlink("/etc/passwd", workdir / "passwd.csv")
    os.symlink("/etc/passwd", workdir / "charts" / "p.png")
    found = collect_files(workdir, ("*.csv", "**/*.png", "*"), FileCaps())
    assert all("passwd" not in f.path and f.path != "charts/p.png" for f in found)
    assert all(b"root:" not in base64.b64decode(f.data or "") for f in found)


def test_a_symlink_to_a_directory_is_not_walked(workdir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("secret")
    os.symlink(outside, workdir / "linked")
    os.symlink("/etc", workdir / "etc")
    found = collect_files(workdir, ("**/*",), FileCaps())
    assert not [f for f in found if f.path.startswith(("linked", "etc"))]


def test_fifos_and_other_non_regular_files_are_skipped(workdir: Path) -> None:
    os.mkfifo(workdir / "pipe.csv")
    assert _paths(collect_files(workdir, ("*.csv",), FileCaps())) == ["a.csv"]


def test_a_file_over_the_per_file_cap_is_listed_truncated(workdir: Path) -> None:
    (workdir / "big.csv").write_bytes(b"x" * 100)
    found = collect_files(workdir, ("*.csv",), FileCaps(max_file_bytes=50))
    by_path = {f.path: f for f in found}
    assert by_path["big.csv"].truncated and by_path["big.csv"].data is None
    assert by_path["big.csv"].size == 100
    assert by_path["a.csv"].data is not None


def test_files_stop_coming_with_data_once_the_run_cap_is_spent(workdir: Path) -> None:
    for name in ("1.csv", "2.csv", "3.csv"):
        (workdir / name).write_bytes(b"y" * 40)
    found = collect_files(workdir, ("[123].csv",), FileCaps(max_bytes=100))
    assert [f.truncated for f in found] == [False, False, True]


def test_at_most_max_count_files_are_listed(workdir: Path) -> None:
    assert len(collect_files(workdir, ("**/*",), FileCaps(max_count=2))) == 2


@pytest.mark.parametrize(
    "pattern",
    ["/etc/passwd", "../x", "a/../../b", "", "a//b", "./a", "a\\b", "x" * 300],
    ids=["absolute", "dotdot", "inner-dotdot", "empty", "empty-part", "dot", "backslash", "long"],
)
def test_bad_globs_are_refused_naming_their_index(pattern: str) -> None:
    with pytest.raises(InvalidJob) as caught:
        Job(code="pass", return_files=("*.csv", pattern))
    assert caught.value.field == "return_files[1]"


def test_too_many_globs_are_refused() -> None:
    with pytest.raises(InvalidJob, match="at most 20"):
        Job(code="pass", return_files=tuple(f"{i}.csv" for i in range(21)))


def test_glob_semantics() -> None:
    assert matches("a.csv", "*.csv") and not matches("d/a.csv", "*.csv")
    assert matches("d/a.csv", "**/a.csv") and matches("a.csv", "**/a.csv")


@pytest.mark.parametrize(
    ("mime_type", "data", "message"),
    [
        pytest.param("application/x-evil", "x", "can't be displayed", id="mime-not-allowed"),
        pytest.param("image/png", "not base64!", "not valid base64", id="bad-base64"),
        pytest.param("text/html", 3, "must be a string", id="not-a-string"),
        pytest.param(None, "x", "can't be displayed", id="no-mime"),
    ],
)
def test_malformed_displays_are_refused(mime_type: object, data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_display(mime_type, data)


def test_a_display_counts_its_decoded_bytes() -> None:
    _, size = check_display("image/png", base64.b64encode(b"12345").decode())
    assert size == 5


def _deliver(outcome: dict[str, object], limit: int) -> tuple[dict[str, object], object, list]:
    sent: list[Display] = []
    meter = OutputMeter(limit, lambda stream, text: None)
    result, aborted = deliver_outputs(outcome, meter, sent.append)
    return result, aborted, sent


def test_outputs_in_an_outcome_are_sent_in_order() -> None:
    outputs = [
        {"mime_type": "text/html", "data": "<b>1</b>"},
        {"mime_type": "text/plain", "data": "2"},
    ]
    outcome, aborted, sent = _deliver({"status": "ok", "outputs": outputs}, 100)
    assert aborted is None and "outputs" not in outcome
    assert [d.data for d in sent] == ["<b>1</b>", "2"]


def test_outputs_over_output_bytes_end_the_run_output_limit() -> None:
    outputs = [{"mime_type": "text/plain", "data": "x" * 60}] * 2
    _, aborted, sent = _deliver({"status": "ok", "outputs": outputs}, 100)
    assert aborted is Status.OUTPUT_LIMIT and len(sent) == 1


def test_a_forged_output_in_an_outcome_is_the_guests_error() -> None:
    outputs = [{"mime_type": "application/x-evil", "data": "x"}]
    outcome, aborted, sent = _deliver({"status": "ok", "outputs": outputs}, 100)
    assert aborted is None and not sent
    assert outcome["status"] == "error"
    assert outcome["error"]["type"] == "SandboxOutputError"  # type: ignore[index]


def test_files_a_guest_gathered_are_checked_again() -> None:
    items = [
        {"path": "a.csv", "size": 1, "data": base64.b64encode(b"abc").decode()},
        {"path": "../etc/passwd", "size": 3, "data": base64.b64encode(b"abc").decode()},
        {"path": "b.txt", "size": 3, "data": base64.b64encode(b"abc").decode()},  # no pattern
        {"path": "a.csv", "size": 3, "data": "QUJD"},  # repeated
        {"path": "big.csv", "size": 10, "data": base64.b64encode(b"z" * 10).decode()},
        "junk",
    ]
    found = guest_files(items, ("*.csv", "**/passwd"), FileCaps(max_file_bytes=5))
    assert [(f.path, f.size, f.truncated) for f in found] == [
        ("a.csv", 3, False),
        ("big.csv", 10, True),
    ]
    assert found[1].data is None


def test_the_guest_and_the_host_agree_on_the_mime_types() -> None:
    # A type only the guest knew would be refused by the host after the run; one only the
    # host knew, unreachable through sandlot.display.
    spec = importlib.util.spec_from_file_location("_guest_outputs_under_test", GUEST_OUTPUTS)
    assert spec is not None and spec.loader is not None
    guest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guest)
    assert set(guest.BINARY_TYPES) == BINARY_DISPLAY_TYPES
    assert set(guest.BINARY_TYPES + guest.TEXT_TYPES) == DISPLAY_TYPES
