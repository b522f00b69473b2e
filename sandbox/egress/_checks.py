"""Small value checks and message helpers shared by the egress parsers and dataclasses."""

from __future__ import annotations


def _bad_char(ch: str) -> bool:
    # isprintable() is False for controls, format characters (zero-width joiners, soft hyphen,
    # bidi overrides) and line/paragraph separators; isspace() adds ASCII and Unicode spaces.
    return ch.isspace() or not ch.isprintable()


def _show(text: str, limit: int = 120) -> str:
    """repr() of text, shortened for messages."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
