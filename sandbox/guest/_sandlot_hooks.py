"""Patches applied to a module right after it is first imported, on every engine.

Packages that are not in the snapshot (installed ones such as urllib3, or built-in ones
nobody imported yet) are patched when the code imports them: :func:`after_import`
registers a function that gets the freshly executed module (at once, when the module is
loaded already: the data-stack snapshot pre-imports some). One finder serves every hook,
first on ``sys.meta_path``; a module may have several hooks.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

Hook = Callable[[ModuleType], None]


def after_import(name: str, hook: Hook) -> None:
    """Run ``hook(module)`` right after the module ``name`` (dotted) is first imported,
    or now if it is imported already."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        hook(loaded)
        return
    finder = next((f for f in sys.meta_path if isinstance(f, _AfterImport)), None)
    if finder is None:
        finder = _AfterImport()
        sys.meta_path.insert(0, finder)
    finder.hooks.setdefault(name, []).append(hook)


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.hooks: dict[str, list[Hook]] = {}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        hooks = self.hooks.get(name)
        if hooks is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _HookedLoader(spec.loader, hooks)
        return spec


class _HookedLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, hooks: list[Hook]) -> None:
        self._loader = loader
        self._hooks = hooks

    def create_module(self, spec: Any) -> ModuleType | None:
        created: ModuleType | None = self._loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        for hook in self._hooks:  # in the order they were registered
            hook(module)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, get_source, ...
        return getattr(self._loader, name)
