"""Per-run limits: frozen, typed, units in the names, validated at construction.

Engine-wide settings (pool size, queue timeout) live elsewhere; a ``Limits``
value describes one run only. Server-side maximums are applied by the caller
with :meth:`Limits.check_within`, which names the field that is over.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["LimitExceeded", "Limits"]

MIB = 1024 * 1024


class LimitExceeded(ValueError):
    """A requested limit is above the server's maximum; ``field`` names it."""

    def __init__(self, field: str, value: int, maximum: int) -> None:
        super().__init__(f"{field} is {value}; this server allows at most {maximum}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits for one run.

    Attributes:
        cpu_ms: guest CPU time, in milliseconds: the CPU clock of the thread
            that runs the guest (see docs/engines.md).
        wall_ms: wall-clock time from start to end, in milliseconds; covers
            sleeps, blocked calls and subrequests.
        memory_mb: the guest's linear memory, in MiB.
        output_bytes: stdout and stderr together, in bytes (UTF-8).
        subrequests: outbound HTTP requests, each redirect hop counted.
        code_bytes: size of the submitted code, in bytes (UTF-8).
    """

    cpu_ms: int = 5_000
    wall_ms: int = 10_000
    memory_mb: int = 256
    output_bytes: int = MIB
    subrequests: int = 50
    code_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{field.name} must be an integer, got {value!r}")
            if value < 1 and field.name != "subrequests":
                raise ValueError(f"{field.name} must be at least 1, got {value}")
            if value < 0:
                raise ValueError(f"{field.name} must not be negative, got {value}")

    def replace(self, **changes: Any) -> Limits:
        """A copy with the given fields changed (validated again); None means keep."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: v for k, v in changes.items() if v is not None})
        return Limits(**values)

    def check_within(self, maximum: Limits) -> None:
        """Raise LimitExceeded naming the first field that is above ``maximum``."""
        for field in fields(self):
            value, cap = getattr(self, field.name), getattr(maximum, field.name)
            if value > cap:
                raise LimitExceeded(field.name, value, cap)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
