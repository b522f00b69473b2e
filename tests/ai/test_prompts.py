"""app/ai/prompts.py and prompts/: every template renders; variables are checked both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ai import PromptError, Prompts
from app.ai.prompts import REQUIRED
from tests.conftest import ROOT

PROMPTS = Prompts.load(ROOT / "prompts")


def _values(name: str) -> dict[str, str]:
    return {variable: f"<{variable}>" for variable in PROMPTS[name].variables}


@pytest.mark.parametrize("name", PROMPTS.names())
def test_every_template_renders(name: str) -> None:
    template = PROMPTS[name]
    assert template.version >= 1
    assert template.description
    text = template.render(**_values(name))
    for variable in template.variables:
        assert f"<{variable}>" in text
    assert "${" not in text
    assert template.tag == f"{name}@{template.version}"


@pytest.mark.parametrize("name", PROMPTS.names())
def test_a_missing_or_unknown_variable_fails(name: str) -> None:
    values = _values(name)
    with pytest.raises(PromptError, match="unknown \\['surprise'\\]"):
        PROMPTS[name].render(**values, surprise="x")
    for variable in values:
        partial = {k: v for k, v in values.items() if k != variable}
        with pytest.raises(PromptError, match=f"missing variables \\['{variable}'\\]"):
            PROMPTS[name].render(**partial)


def test_every_required_template_is_there() -> None:
    assert set(PROMPTS.names()) >= REQUIRED


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        (
            "system",
            [
                "fresh CPython",
                "/work",
                "from sandlot import fetch",
                "urllib.request.urlopen",
                "no threads, no subprocesses",
                "expression",
                "await",
                "FetchError",
            ],
        ),
        (
            "worker",
            [
                "from workers import Response",
                "def on_fetch(request, env)",
                "Response.json",
                "GET /",
                "env.NAME",
                "from sandlot import fetch",
            ],
        ),
        ("engine_wasmtime", ["numpy, pandas, matplotlib", "scikit-learn", "requests", "ctypes"]),
        ("engine_wasmtime_component", ["ctypes, ssl", "no pip, no requests", "numpy"]),
        ("engine_pyodide", ["requests", "numpy, pandas", "pyodide.http.pyfetch"]),
        ("repair", ["Traceback", "stdout", "stderr", "```python"]),
        ("no_code", ["```python"]),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_templates_state_the_sandbox_rules(name: str, facts: list[str]) -> None:
    text = PROMPTS[name].render(**_values(name))
    for fact in facts:
        assert fact in text, fact


def _write(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.toml").write_text(body)


def _complete(directory: Path) -> None:
    for name in REQUIRED:
        _write(directory, name, 'version = 1\ntext = "plain"\n')


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('version = 1\ntext = "hi ${who}"\n', "uses \\['who'\\] but variables declares \\[\\]"),
        ('version = 1\nvariables = ["who"]\ntext = "hi"\n', "declares \\['who'\\]"),
        ('version = 1\ntext = "costs $5"\n', "write \\$\\$"),
        ('text = "hi"\n', "version must be a positive integer"),
        ('version = "1"\ntext = "hi"\n', "version must be a positive integer"),
        ("version = 1\n", "text must be a non-empty string"),
        ('version = 1\ntext = "hi"\nvariables = "who"\n', "variables must be a list"),
        ("version = 1\ntext = 'unclosed\n", "system.toml"),
    ],
    ids=[
        "undeclared",
        "unused",
        "stray-dollar",
        "no-version",
        "string-version",
        "no-text",
        "variables-not-list",
        "bad-toml",
    ],
)
def test_a_broken_template_fails_to_load_naming_the_file(
    tmp_path: Path, body: str, message: str
) -> None:
    _complete(tmp_path)
    _write(tmp_path, "system", body)
    with pytest.raises(PromptError, match=message) as raised:
        Prompts.load(tmp_path)
    assert "system.toml" in str(raised.value)


def test_a_missing_template_fails_to_load(tmp_path: Path) -> None:
    _complete(tmp_path)
    (tmp_path / "repair.toml").unlink()
    with pytest.raises(PromptError, match="missing templates: repair"):
        Prompts.load(tmp_path)


def test_a_literal_dollar_is_written_twice(tmp_path: Path) -> None:
    _complete(tmp_path)
    _write(tmp_path, "no_code", 'version = 2\ntext = "costs $$5"\n')
    assert Prompts.load(tmp_path)["no_code"].render() == "costs $5\n"
