"""Users' estimators: plugins that register with the public decorator, found where users put them.

A plugin is Python code that calls ``rspo_patch.estimators.register_estimator`` on import, with the metadata the
built-ins declare. Three ways in, all loaded by :func:`load_plugins`:

    config ``plugins:``        a list of importable module names (``my_pkg.estimators``) or paths to ``.py`` files,
                               relative to the working directory (``plugins/challenger.py``)
    entry points               group ``rspo_bench.estimators`` of installed packages, e.g. in pyproject.toml
                               ``[project.entry-points."rspo_bench.estimators"] challenger = "my_pkg.estimators"``
                               (a module, imported; or ``module:function``, imported and called with no arguments)
    RSPO_BENCH_PLUGINS         the same specs, os.pathsep-separated: how the trainers' subprocesses and Ray actors
                               get the plugins of the parent (:func:`exported`)

Every failure is one :class:`PluginError` line naming the plugin and the problem: a file that is missing or fails to
import (with the plugin's file and line), a name that is taken or reserved, contradictory metadata, a plugin that
registers nothing. Each loaded estimator's spec gets ``origin`` (the plugin) and ``source_sha256`` (the SHA-256 of the
plugin's source files: the module's file, or every ``.py`` file of its top-level package), which the workflow puts
into the plugin's cells' fingerprint: a changed plugin retrains its own cells and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rspo_patch.estimators.registry import ESTIMATORS

ENTRY_POINT_GROUP = "rspo_bench.estimators"
PLUGINS_ENV = "RSPO_BENCH_PLUGINS"

__all__ = ["ENTRY_POINT_GROUP", "PLUGINS_ENV", "Plugin", "PluginError", "load_plugin", "load_plugins",
           "load_entry_points", "plugin_of", "exported", "import_dirs", "source_digest", "check_source"]


class PluginError(ValueError):
    """A plugin that cannot be used; the message is one line naming the plugin and the problem."""


@dataclass(frozen=True)
class Plugin:
    """One loaded plugin.

    spec     as given (config entry, module name, ``entry point NAME``)
    target   what a subprocess loads again: an absolute .py path or a module name
    names    the estimators it registered
    files    its source files (absolute), hashed into source_sha256
    import_dir  the folder that must be on sys.path for ``target`` to import (None for paths and installed modules)
    """

    spec: str
    target: str
    names: tuple[str, ...]
    files: tuple[str, ...]
    source_sha256: str
    import_dir: str | None = None


_LOADED: dict[str, Plugin] = {}  # target -> plugin (loading twice is a no-op)


def is_path_spec(spec: str) -> bool:
    """A spec naming a file (ends in .py or holds a path separator) rather than a module."""
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def source_digest(files) -> str:
    """SHA-256 over the files' names (relative to their common folder) and bytes, in sorted order."""
    paths = sorted(Path(f).resolve() for f in files)
    root = Path(os.path.commonpath([p.parent for p in paths])) if paths else Path("/")
    h = hashlib.sha256()
    for p in paths:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _package_files(module) -> tuple[list[str], str | None]:
    """The source files of a module's top-level package (every .py under it) or of a lone module; and the folder that
    holds the top-level package or module (what sys.path needs)."""
    top = module.__name__.split(".")[0]
    top_mod = sys.modules.get(top, module)
    file = getattr(top_mod, "__file__", None) or getattr(module, "__file__", None)
    if file is None:
        return [], None
    path = Path(file).resolve()
    if path.name == "__init__.py":
        pkg = path.parent
        return sorted(str(p) for p in pkg.rglob("*.py") if "__pycache__" not in p.parts), str(pkg.parent)
    return [str(path)], str(path.parent)


def _where(exc: BaseException, files) -> str:
    """' (FILE:LINE)' of the innermost traceback frame inside the plugin's files, '' if none."""
    wanted = {str(Path(f).resolve()) for f in files}
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(Path(f.filename).resolve()) in wanted]
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f" ({exc.filename}:{exc.lineno})"
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _attribute(plugin_spec: str, target: str, before: set[str], modules: tuple[str, ...], files: list[str],
               import_dir: str | None) -> Plugin:
    """The Plugin whose estimators are the names registered since ``before`` or defined in ``modules``; each spec gets
    origin and source_sha256."""
    names = [n for n, s in ESTIMATORS.items()
             if n not in before or (s.origin == "builtin" and s.raw_fn.__module__.split(".")[0] in modules)]
    names = [n for n in names if not ESTIMATORS[n].raw_fn.__module__.startswith("rspo_patch.estimators.")]
    if not names:
        raise PluginError(f"plugin {plugin_spec}: registers no estimator; expected at least one function decorated "
                          f"with rspo_patch.estimators.register_estimator(...)")
    digest = source_digest(files) if files else ""
    for n in names:
        ESTIMATORS[n] = dataclasses.replace(ESTIMATORS[n], origin=plugin_spec, source_sha256=digest)
    plugin = Plugin(spec=plugin_spec, target=target, names=tuple(names), files=tuple(files), source_sha256=digest,
                    import_dir=import_dir)
    _LOADED[target] = plugin
    return plugin


def _load_path(spec: str, base_dir: Path) -> Plugin:
    path = (base_dir / spec).resolve()
    if path.suffix != ".py":
        raise PluginError(f"plugin {spec}: expected a .py file or an importable module name")
    if not path.is_file():
        raise PluginError(f"plugin {spec}: file not found ({path}); paths are relative to the working directory "
                          f"{base_dir}")
    target = str(path)
    if target in _LOADED:
        return _LOADED[target]
    same = _imported_as(path)
    if same is not None:  # the file is a module already imported by name (an installed plugin's entry point): reuse it
        loaded = next((p for p in _LOADED.values() if p.target == same.__name__ or
                       p.target == same.__name__.split(".")[0]), None)
        if loaded is not None:
            _LOADED[target] = loaded
            return loaded
        return _attribute(spec, target, set(ESTIMATORS), (same.__name__.split(".")[0],), [str(path)], None)
    mod_name = f"rspo_bench_plugin_{path.stem}_{hashlib.sha256(target.encode()).hexdigest()[:10]}"
    before = set(ESTIMATORS)
    try:
        mod_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_name] = module  # dataclasses, pickling and inspect look modules up by name
        mod_spec.loader.exec_module(module)
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; one line names it
        sys.modules.pop(mod_name, None)
        _forget(before)
        raise PluginError(f"plugin {spec}: {_problem(exc)}{_where(exc, [path])}") from None
    return _attribute(spec, target, before, (mod_name,), [str(path)], None)


def _forget(before: set[str]) -> None:
    """Unregister every name added since ``before``: a half-imported plugin leaves nothing registered."""
    for n in set(ESTIMATORS) - before:
        del ESTIMATORS[n]


def check_source(name: str, expected: str | None, flag: str) -> None:
    """ValueError naming ``flag`` if ``expected`` (the workflow's digest of a plugin's source, given as ``flag``) is
    set and estimator ``name``'s loaded source digest differs: the plugin changed after the job was planned. Both
    trainers call it before any model is loaded."""
    spec = ESTIMATORS[name]
    if expected is not None and expected != (spec.source_sha256 or ""):
        raise ValueError(f"{flag} {expected[:12]}...: estimator {name!r} ({spec.origin}) now has source "
                         f"{str(spec.source_sha256)[:12]}...; the plugin changed after the job was planned: rerun "
                         f"the workflow")


def _imported_as(path: Path):
    """The module of sys.modules whose file is ``path`` (loading it again would register its estimators twice)."""
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == path:
            return module
    return None


def _problem(exc: BaseException) -> str:
    """A registry refusal (ValueError from register_estimator) as it is; anything else as 'import failed: ...'."""
    if isinstance(exc, ValueError) and str(exc).startswith("estimator "):
        return str(exc).splitlines()[0]
    return f"import failed: {_one_line(exc)}"


def _load_module(spec: str, label: str | None = None, attr: str | None = None) -> Plugin:
    label = label or spec
    if spec in _LOADED:
        return _LOADED[spec]
    before = set(ESTIMATORS)
    try:
        module = importlib.import_module(spec)
        if attr is not None:
            obj = getattr(module, attr)
            if callable(obj):
                obj()
    except Exception as exc:  # noqa: BLE001
        _forget(before)
        if isinstance(exc, ModuleNotFoundError) and exc.name and spec.startswith(exc.name):
            raise PluginError(f"plugin {label}: no module named {exc.name!r} (not installed and not on sys.path; "
                              f"a file is given as a path ending in .py)") from None
        files = _package_files(sys.modules[spec])[0] if spec in sys.modules else []
        raise PluginError(f"plugin {label}: {_problem(exc)}{_where(exc, files)}") from None
    files, import_dir = _package_files(module)
    top = spec.split(".")[0]
    in_site = import_dir is not None and any(import_dir == str(Path(p).resolve()) for p in _site_dirs())
    return _attribute(label, spec, before, (top,), files, None if in_site else import_dir)


def _site_dirs() -> list[str]:
    import site

    dirs = list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages()]
    return [d for d in dirs if d]


def load_plugin(spec: str, base_dir: str | os.PathLike | None = None) -> Plugin:
    """Load one plugin (a .py path relative to ``base_dir``, default the working directory, or a module name)."""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"plugin {spec!r}: expected a module name or a path to a .py file")
    spec = spec.strip()
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _load_path(spec, base) if is_path_spec(spec) else _load_module(spec)


def load_entry_points() -> list[Plugin]:
    """Every installed package's ``rspo_bench.estimators`` entry point (module, or module:function called once)."""
    out = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(getattr(ep, "dist", None), "name", None)
        label = f"entry point {ep.name} = {ep.value}" + (f" (package {dist})" if dist else "")
        module, _, attr = ep.value.partition(":")
        out.append(_load_module(module.strip(), label=label, attr=attr.strip() or None))
    return out


def load_plugins(specs=(), base_dir=None, *, entry_points: bool = True, env: bool = True) -> list[Plugin]:
    """Load the installed entry points, then RSPO_BENCH_PLUGINS, then ``specs``; the plugins, each once, in order.

    Idempotent: a plugin loaded before is returned, not executed again."""
    found: list[Plugin] = []
    if entry_points:
        found += load_entry_points()
    if env:
        found += [load_plugin(s) for s in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if s.strip()]
    found += [load_plugin(s, base_dir) for s in specs or ()]
    unique: dict[str, Plugin] = {}
    for p in found:
        unique.setdefault(p.target, p)
    return list(unique.values())


def plugin_of(name: str) -> Plugin | None:
    """The loaded plugin that registered estimator ``name``; None for a built-in (or an unknown name)."""
    return next((p for p in _LOADED.values() if name in p.names), None)


def exported(plugins) -> str:
    """The RSPO_BENCH_PLUGINS value that makes a subprocess load these plugins: their targets (absolute .py paths or
    module names), os.pathsep-separated. Entry points need nothing: every process finds them itself."""
    return os.pathsep.join(p.target for p in plugins if not p.spec.startswith("entry point "))


def import_dirs(plugins) -> list[str]:
    """Folders a subprocess needs on PYTHONPATH to import the module plugins (those not installed), in order."""
    out: list[str] = []
    for p in plugins:
        if p.import_dir and p.import_dir not in out:
            out.append(p.import_dir)
    return out
