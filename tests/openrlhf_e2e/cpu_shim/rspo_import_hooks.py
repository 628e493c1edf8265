"""Post-import hooks: run a function on a module right after its first import (the shim patches modules that are
imported late, inside Ray workers and vLLM's engine process, so it cannot patch them eagerly)."""

from __future__ import annotations

import importlib.abc
import sys

_HOOKS: dict[str, list] = {}


def when_imported(name: str):
    """Decorator: call ``fn(module)`` once module ``name`` has executed (at once if it already has)."""

    def deco(fn):
        if name in sys.modules:
            fn(sys.modules[name])
        else:
            _HOOKS.setdefault(name, []).append(fn)
        return fn

    return deco


class _HookedLoader(importlib.abc.Loader):
    def __init__(self, inner, name):
        self.inner, self.name = inner, name

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        for fn in _HOOKS.pop(self.name, []):
            fn(module)


class _HookFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _HOOKS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _HookedLoader(spec.loader, name)
                return spec
        return None


def install_finder() -> None:
    if not any(isinstance(f, _HookFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _HookFinder())
