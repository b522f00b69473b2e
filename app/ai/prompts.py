"""Prompt templates as data: load ``prompts/*.toml`` and render them with explicit variables.

A template declares the variables its text uses; loading fails when the two
disagree, and rendering fails on a missing or an unknown variable, so a prompt
never goes out with a hole in it. ``prompts/README.md`` describes the format.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REQUIRED", "PromptError", "Prompts", "Template"]

# The templates the generate loop renders; a prompts directory without one of them is broken.
REQUIRED = frozenset(
    {
        "system",
        "worker",
        "engine_wasmtime",
        "engine_wasmtime_component",
        "engine_pyodide",
        "repair",
        "no_code",
    }
)


class PromptError(ValueError):
    """A template file is malformed, or a render's variables don't match the template's."""


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    version: int
    description: str
    variables: frozenset[str]
    text: str

    def __post_init__(self) -> None:
        template = string.Template(self.text)
        if not template.is_valid():
            raise PromptError(f"{self.name}: a '$' starts no ${{name}}; write $$ for a '$'")
        used = set(template.get_identifiers())
        if used != self.variables:
            raise PromptError(
                f"{self.name}: the text uses {sorted(used)} but variables declares "
                f"{sorted(self.variables)}"
            )

    @property
    def tag(self) -> str:
        """``name@version``, as reported in a generation's ``prompt_version``."""
        return f"{self.name}@{self.version}"

    def render(self, **values: str) -> str:
        """The text with every variable filled; PromptError on a missing or unknown one."""
        missing = self.variables - values.keys()
        unknown = values.keys() - self.variables
        if missing or unknown:
            raise PromptError(
                f"{self.name}: missing variables {sorted(missing)}, unknown {sorted(unknown)}"
            )
        return string.Template(self.text).substitute(values).strip() + "\n"


class Prompts:
    """A loaded, checked set of templates, looked up by name (the file's stem)."""

    def __init__(self, templates: Mapping[str, Template]) -> None:
        missing = REQUIRED - templates.keys()
        if missing:
            raise PromptError(f"missing templates: {', '.join(sorted(missing))}")
        self._templates = dict(templates)

    @classmethod
    def load(cls, directory: Path) -> Prompts:
        """Every ``*.toml`` in ``directory``; PromptError naming the file when one is broken."""
        templates: dict[str, Template] = {}
        for path in sorted(directory.glob("*.toml")):
            try:
                templates[path.stem] = _parse(path)
            except (OSError, tomllib.TOMLDecodeError, PromptError) as exc:
                raise PromptError(f"{path}: {exc}") from exc
        try:
            return cls(templates)
        except PromptError as exc:
            raise PromptError(f"{directory}: {exc} (SANDLOT_PROMPTS_DIR)") from exc

    def __getitem__(self, name: str) -> Template:
        return self._templates[name]

    def names(self) -> list[str]:
        return sorted(self._templates)


def _parse(path: Path) -> Template:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    version, text = data.get("version"), data.get("text")
    variables, description = data.get("variables", []), data.get("description", "")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PromptError("version must be a positive integer")
    if not isinstance(text, str) or not text.strip():
        raise PromptError("text must be a non-empty string")
    if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
        raise PromptError("variables must be a list of names")
    if not isinstance(description, str):
        raise PromptError("description must be a string")
    return Template(path.stem, version, description, frozenset(variables), text)
