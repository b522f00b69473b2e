"""app/ai/extract.py: finding the program in a model's answer."""

from __future__ import annotations

import pytest

from app.ai import extract_code

FENCE = "```"


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (f"Here it is:\n{FENCE}python\nprint(1)\n{FENCE}\nEnjoy!", "print(1)\n"),
        (f"{FENCE}py\nx = 1\n{FENCE}", "x = 1\n"),
        (f"{FENCE}Python3 title=main.py\nx = 2\n{FENCE}", "x = 2\n"),
        (f"{FENCE}\nprint(3)\n{FENCE}", "print(3)\n"),
        (f"{FENCE}bash\npip install x\n{FENCE}\n{FENCE}python\nprint(4)\n{FENCE}", "print(4)\n"),
        (f"{FENCE}\nnot python at all\n{FENCE}\n{FENCE}\nprint(5)\n{FENCE}", "print(5)\n"),
        (f"{FENCE}python\nfirst()\n{FENCE}\n{FENCE}python\nsecond()\n{FENCE}", "first()\n"),
        ("~~~python\nprint(6)\n~~~", "print(6)\n"),
        (
            f"{FENCE}python\nfor i in range(3):\n    print(i)\n",
            "for i in range(3):\n    print(i)\n",
        ),
        (f"{FENCE}python\ndef broken(:\n    pass\n{FENCE}", "def broken(:\n    pass\n"),
        (
            f"<think>maybe {FENCE}python\nwrong()\n{FENCE}</think>\n"
            f"{FENCE}python\nright()\n{FENCE}",
            "right()\n",
        ),
        ("import math\nmath.sqrt(2)", "import math\nmath.sqrt(2)\n"),
        ("print('bare')", "print('bare')\n"),
    ],
    ids=[
        "python-block",
        "py-tag",
        "tag-with-info",
        "untagged-block",
        "python-block-wins",
        "untagged-that-parses",
        "first-python-block",
        "tildes",
        "unclosed-block",
        "syntax-error-kept-for-repair",
        "thinking-skipped",
        "bare-program",
        "bare-call",
    ],
)
def test_code_is_found(answer: str, code: str) -> None:
    assert extract_code(answer) == code


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "Sorry.",
        "Hello",
        "'just a string'",
        "I cannot help with that request.",
        f"{FENCE}bash\nls -la\n{FENCE}",
        f"{FENCE}python\n\n{FENCE}",
        f"Use this: {FENCE}not code{FENCE}",
        "<think>print(1)</think>",
    ],
    ids=[
        "empty",
        "prose",
        "one-word",
        "a-string",
        "refusal",
        "other-language",
        "empty-block",
        "inline-fence",
        "only-thinking",
    ],
)
def test_no_code_is_found(answer: str) -> None:
    assert extract_code(answer) is None
