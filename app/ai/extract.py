"""The code in a model's answer: a fenced ```python block, or a bare answer that is Python.

Models wrap code in Markdown fences, sometimes several, sometimes untagged, and
local reasoning models put their thinking in ``<think>`` tags first. The first
block tagged python wins; then the first untagged block that parses; then the
whole answer, if it parses and is more than a lone word or string (so "Sorry."
or "Hello" is not mistaken for a program).
"""

from __future__ import annotations

import ast
import re

__all__ = ["extract_code"]

_THINKING = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
# An opening fence at the start of a line, its info string, the body, and the closing
# fence (or the end of the answer, when the model ran out of tokens mid-block).
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)"
    r"(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.DOTALL | re.MULTILINE,
)
_PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})


def extract_code(answer: str) -> str | None:
    """The program in ``answer``, or None when it holds none."""
    text = _THINKING.sub("", answer)
    untagged: list[str] = []
    for match in _FENCE.finditer(text):
        info = match["info"].strip().lower()
        tag = info.split()[0] if info else ""
        body = match["body"].strip("\n")
        if not body.strip():
            continue
        if tag in _PYTHON_TAGS:
            return body + "\n"
        if not tag:
            untagged.append(body)
    for body in untagged:
        if _parses(body):
            return body + "\n"
    bare = text.strip()
    if bare and "```" not in bare and _parses(bare) and not _trivial(bare):
        return bare + "\n"
    return None


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def _trivial(source: str) -> bool:
    """One bare name or constant: prose that happens to parse, not a program."""
    body = ast.parse(source).body
    return len(body) == 1 and (
        isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Name | ast.Constant)
    )
