"""sandbox/limits.py: validation at construction, server maximums."""

from __future__ import annotations

import pytest

from sandbox.limits import LimitExceeded, Limits


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cpu_ms": 0}, "cpu_ms must be at least 1"),
        ({"wall_ms": -5}, "wall_ms must be at least 1"),
        ({"memory_mb": 1.5}, "memory_mb must be an integer"),
        ({"output_bytes": True}, "output_bytes must be an integer"),
        ({"subrequests": -1}, "subrequests must not be negative"),
        ({"code_bytes": "10"}, "code_bytes must be an integer"),
    ],
    ids=["cpu-zero", "wall-negative", "memory-float", "output-bool", "subrequests-neg", "str"],
)
def test_invalid_values_raise_value_error_naming_the_field(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Limits(**fields)  # type: ignore[arg-type]


def test_zero_subrequests_is_allowed() -> None:
    assert Limits(subrequests=0).subrequests == 0


def test_replace_keeps_unset_fields_and_validates() -> None:
    base = Limits(cpu_ms=100, wall_ms=200)
    changed = base.replace(cpu_ms=50, wall_ms=None)
    assert (changed.cpu_ms, changed.wall_ms) == (50, 200)
    with pytest.raises(ValueError, match="cpu_ms"):
        base.replace(cpu_ms=0)


def test_check_within_names_the_first_field_over_the_maximum() -> None:
    maximum = Limits(cpu_ms=1_000, memory_mb=512)
    Limits(cpu_ms=1_000, memory_mb=512).check_within(maximum)
    with pytest.raises(LimitExceeded) as info:
        Limits(cpu_ms=1_000, memory_mb=513).check_within(maximum)
    assert info.value.field == "memory_mb"
    assert "at most 512" in str(info.value)


def test_limits_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Limits().cpu_ms = 5  # type: ignore[misc]
