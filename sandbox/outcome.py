"""From what a guest did to how its run ended: engine-independent pieces.

* :class:`OutputMeter` counts stdout and stderr bytes against the run's
  ``output_bytes``, keeps what fits, decodes UTF-8 across chunk boundaries,
  and says when the cap was crossed.
* :func:`parse_outcome` reads the guest's JSON outcome (written by
  ``sandbox/guest/_sandlot_exec.py``); garbage is a guest error, since user
  code can patch the interpreter it runs in.
* :func:`deliver_outputs` checks, counts and forwards the rich outputs a guest
  handed back with its outcome.
* :func:`report` combines the outcome with what the host saw (an abort, a
  trap) into the run's :class:`~sandbox.events.RunReport`.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from typing import Any

from sandbox.events import Display, GuestError, ResultValue, RunReport, Status, Usage
from sandbox.outputs import check_display

__all__ = ["OutputMeter", "deliver_outputs", "parse_outcome", "report"]


class OutputMeter:
    """Meters one run's output; ``emit(stream, text)`` receives what is kept."""

    def __init__(self, limit_bytes: int, emit: Callable[[str, str], None]) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        self.truncated = False
        self._emit = emit
        self._decoders = {
            stream: codecs.getincrementaldecoder("utf-8")("replace")
            for stream in ("stdout", "stderr")
        }

    def write(self, stream: str, data: bytes) -> bool:
        """Count and forward ``data``; False once the cap is crossed (the run must end)."""
        if self.truncated:
            return False
        room = self.limit_bytes - self.used_bytes
        kept = data if len(data) <= room else data[:room]
        self.used_bytes += len(kept)
        text = self._decoders[stream].decode(kept)
        if text:
            self._emit(stream, text)
        if len(kept) < len(data):
            self.truncated = True
        return not self.truncated

    def count(self, size: int) -> bool:
        """Count ``size`` bytes of a rich output; False (nothing counted) if over the cap."""
        if self.truncated or self.used_bytes + size > self.limit_bytes:
            self.truncated = True
            return False
        self.used_bytes += size
        return True

    def close(self) -> None:
        """Emit whatever partial characters the decoders still hold."""
        for stream, decoder in self._decoders.items():
            text = decoder.decode(b"", final=True)
            if text:
                self._emit(stream, text)


def parse_outcome(raw: str) -> dict[str, Any]:
    """The guest's outcome as a dict with a valid ``status``; never raises."""
    try:
        outcome = json.loads(raw)
        Status(outcome["status"])
        if not isinstance(outcome.get("error") or {}, dict):
            raise TypeError("error is not an object")
        if outcome.get("error"):
            GuestError(**outcome["error"])
        if outcome.get("result") is not None:
            str(outcome["result"]["repr"])  # a result must carry its repr
    except (ValueError, KeyError, TypeError) as exc:
        return {
            "status": "error",
            "error": {
                "type": "SandboxOutcomeError",
                "message": f"the guest's outcome could not be read ({exc}); "
                "did the code patch the interpreter's internals?",
                "traceback": "",
            },
        }
    return dict(outcome)


def deliver_outputs(
    outcome: dict[str, Any], meter: OutputMeter, emit: Callable[[Display], None]
) -> tuple[dict[str, Any], Status | None]:
    """Send the outcome's ``outputs`` on, each checked and counted; the outcome, and
    ``OUTPUT_LIMIT`` when they went over ``output_bytes``.

    A malformed output is the guest's error (its code can forge them): the outcome
    becomes an error naming it; the outputs before it were sent.
    """
    items = outcome.pop("outputs", None)
    if items is None:
        return outcome, None
    if not isinstance(items, list):
        items = [items]
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValueError("is not an object")
            output, size = check_display(item.get("mime_type"), item.get("data"))
        except ValueError as exc:
            return {
                "status": "error",
                "error": {
                    "type": "SandboxOutputError",
                    "message": f"output {index} was refused: {exc}",
                    "traceback": "",
                },
            }, None
        if not meter.count(size):
            return outcome, Status.OUTPUT_LIMIT
        emit(output)
    return outcome, None


def report(
    outcome: dict[str, Any] | None,
    usage: Usage,
    *,
    aborted: Status | None = None,
    error: GuestError | None = None,
    output_truncated: bool = False,
) -> RunReport:
    """How the run ended.

    ``aborted`` (the host ended the run: a limit, a cancel) wins over whatever
    the guest reported. Without an outcome and without an abort the run ends
    ``internal_error`` with ``error`` (or a generic one). A guest ``MemoryError``
    means the run hit its memory limit.
    """
    if outcome is None:
        status = aborted or Status.INTERNAL_ERROR
        if status is Status.INTERNAL_ERROR and error is None:
            error = GuestError("GuestCrash", "the guest ended without reporting an outcome")
        return RunReport(status, usage, error, output_truncated=output_truncated)
    error_data = outcome.get("error")
    guest_error = GuestError(**error_data) if error_data else None
    status = Status(outcome["status"])
    if aborted is not None:
        # What the guest saw of the abort (an interrupt) is the host's doing.
        status, guest_error = aborted, None
    elif status is Status.ERROR and guest_error is not None and guest_error.type == "MemoryError":
        status = Status.MEMORY_LIMIT
    result = None
    result_data = outcome.get("result")
    if status is Status.OK and result_data is not None:
        result = ResultValue(
            repr=result_data["repr"],
            json=result_data.get("json"),
            has_json="json" in result_data,
            truncated=result_data.get("truncated", False),
        )
    return RunReport(status, usage, guest_error, result, outcome.get("exit_code"), output_truncated)
