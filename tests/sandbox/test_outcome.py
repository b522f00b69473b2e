"""sandbox/outcome.py: output metering, outcome parsing, and how a run's status is decided."""

from __future__ import annotations

import pytest

from sandbox.events import GuestError, Status, Usage
from sandbox.outcome import OutputMeter, parse_outcome, report


def test_meter_keeps_output_up_to_the_cap_and_says_when_it_is_crossed() -> None:
    seen: list[tuple[str, str]] = []
    meter = OutputMeter(10, lambda stream, text: seen.append((stream, text)))
    assert meter.write("stdout", b"hello")
    assert meter.write("stderr", b"world")
    assert not meter.write("stdout", b"!")
    assert not meter.write("stdout", b"more")
    assert seen == [("stdout", "hello"), ("stderr", "world")]
    assert (meter.used_bytes, meter.truncated) == (10, True)


def test_meter_decodes_utf8_split_across_chunks() -> None:
    seen: list[str] = []
    meter = OutputMeter(100, lambda _stream, text: seen.append(text))
    data = "é✓".encode()
    for i in range(len(data)):
        meter.write("stdout", data[i : i + 1])
    meter.close()
    assert "".join(seen) == "é✓"


def test_meter_cut_inside_a_character_keeps_whole_bytes_only() -> None:
    seen: list[str] = []
    meter = OutputMeter(3, lambda _stream, text: seen.append(text))
    meter.write("stdout", "a✓".encode())  # 1 + 3 bytes
    meter.close()
    assert meter.used_bytes == 3
    assert "".join(seen).startswith("a")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"status": "weird"}',
        '{"status": "error", "error": 5}',
        '{"status": "ok", "result": {}}',
    ],
    ids=["not-json", "list", "bad-status", "bad-error", "result-without-repr"],
)
def test_unreadable_outcomes_become_guest_errors(raw: str) -> None:
    outcome = parse_outcome(raw)
    assert outcome["status"] == "error"
    assert outcome["error"]["type"] == "SandboxOutcomeError"


def test_abort_wins_over_the_guests_own_outcome() -> None:
    outcome = {"status": "error", "error": {"type": "KeyboardInterrupt", "message": ""}}
    run = report(outcome, Usage(), aborted=Status.WALL_LIMIT)
    assert (run.status, run.error) == (Status.WALL_LIMIT, None)


def test_memory_error_means_memory_limit() -> None:
    outcome = {"status": "error", "error": {"type": "MemoryError", "message": ""}}
    assert report(outcome, Usage()).status is Status.MEMORY_LIMIT


def test_no_outcome_and_no_abort_is_an_internal_error() -> None:
    run = report(None, Usage())
    assert run.status is Status.INTERNAL_ERROR
    assert run.error is not None and run.error.type == "GuestCrash"
    crash = GuestError("StackOverflow", "deep")
    assert report(None, Usage(), aborted=Status.ERROR, error=crash).error == crash


def test_result_only_for_ok_runs() -> None:
    outcome = {"status": "ok", "result": {"repr": "[1]", "json": [1]}}
    run = report(outcome, Usage())
    assert run.result is not None and run.result.json == [1] and run.result.has_json
    assert report(outcome, Usage(), aborted=Status.OUTPUT_LIMIT).result is None
