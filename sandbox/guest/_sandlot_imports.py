"""Patching a module right after its first import, in any guest.

What the snapshot already holds is patched when the snapshot is made; a module it doesn't
hold (an installed package like urllib3, or a stdlib module few runs use) is patched by
:func:`after_import` the moment a run first imports it, so a run that never imports it
pays nothing: one finder in ``sys.meta_path`` that looks the name up in a dict.
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
    """Call ``hook(module)`` once module ``name`` (dotted, exact) has been executed.

    Before the importer binds it: ``from name import x`` already sees the patch. One hook
    per name; a second replaces the first.
    """
    finder = next((f for f in sys.meta_path if isinstance(f, _AfterImport)), None)
    if finder is None:
        finder = _AfterImport()
        sys.meta_path.insert(0, finder)
    finder.hooks[name] = hook


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds hooked modules where the path finder would, and wraps their loaders."""

    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        hook = self.hooks.get(name)
        if hook is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _HookedLoader(spec.loader, hook)
        return spec


class _HookedLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, hook: Hook) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: Any) -> ModuleType | None:
        created: ModuleType | None = self._loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._hook(module)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, get_source, ...
        return getattr(self._loader, name)
