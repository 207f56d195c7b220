"""The plugin manager factory: entry points of group ``genpost``, filtered by an allowlist."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from . import __api_version__, __version__, hookspecs
from .errors import PluginError
from .postprocessor import PostProcessor

ENTRY_POINT_GROUP = "genpost"
ALLOWLIST_ENV = "GENPOST_LOAD_PLUGINS"
log = logging.getLogger("genpost")


@dataclass(frozen=True)
class Registered:
    cls: type[PostProcessor]
    plugin: str  # entry-point name of the package that registered it
    source: str  # distribution name and version, or "builtin"


def allowlist() -> set[str] | None:
    """Entry-point names allowed by ``GENPOST_LOAD_PLUGINS`` (comma separated); None means all."""
    raw = os.environ.get(ALLOWLIST_ENV)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh plugin manager with genpost's hookspecs and the allowed installed plugins registered.

    Built-ins are entry points of genpost's own distribution, so they are loaded (and can be excluded)
    exactly like third-party plugins.
    """
    pm = pluggy.PluginManager("genpost")
    pm.add_hookspecs(hookspecs)
    if not load_entry_points:
        return pm
    allowed = allowlist()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken package must not take down jobs that do not use it
            message = f"plugin {ep.name!r} failed to load: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            if ep.name not in BROKEN:
                BROKEN[ep.name] = message
                log.warning("%s; skipped", message)
            continue
        check_api_version(getattr(module, "api_version", None), f"plugin {ep.name!r}")
        pm.register(module, name=ep.name)
        dist = getattr(ep, "dist", None)
        _SOURCES[ep.name] = f"{dist.name} {dist.version}" if dist is not None else ep.value
    for name, plugin in _IN_PROCESS.items():
        if pm.get_plugin(name) is None:
            pm.register(plugin, name=name)
            _SOURCES[name] = "in-process"
    return pm


_SOURCES: dict[str, str] = {}
BROKEN: dict[str, str] = {}  # entry-point name -> why it failed to load (warned once per process)
_IN_PROCESS: dict[str, object] = {}


def check_api_version(declared, who: str) -> None:
    """Refuse a plugin written for another plugin API than this genpost provides (None: not declared)."""
    if declared is None or (type(declared) is int and declared == __api_version__):
        return
    raise PluginError(
        f"{who} is written for genpost plugin API {declared!r}, but genpost {__version__} provides API "
        f"{__api_version__}; install a release of the plugin for API {__api_version__} or a matching genpost"
    )


@contextlib.contextmanager
def in_process_plugin(name: str, plugin: object) -> Iterator[None]:
    """Register ``plugin`` (an object with @hookimpl functions) in every plugin manager made inside the
    block, as if it were installed; genpost.testing uses it to run plugins under test through the pipeline."""
    if name in _IN_PROCESS:
        raise PluginError(f"in-process plugin {name!r} is already registered")
    _IN_PROCESS[name] = plugin
    try:
        yield
    finally:
        del _IN_PROCESS[name]


class Registering:
    """A plugin object whose ``register_postprocessors`` registers the given PostProcessor classes: how a
    test (or ``genpost.testing``) installs classes it defines itself, with ``in_process_plugin``."""

    def __init__(self, *classes: type) -> None:
        self.classes = classes

    @hookspecs.hookimpl
    def register_postprocessors(self, register) -> None:
        for cls in self.classes:
            register(cls)


@contextlib.contextmanager
def installed(*classes: type) -> Iterator[None]:
    """Each PostProcessor class registered in-process under its ``name`` for the block, as if installed."""
    with contextlib.ExitStack() as stack:
        for cls in classes:
            stack.enter_context(in_process_plugin(cls.name, Registering(cls)))  # type: ignore[attr-defined]
        yield


def postprocessors(pm: pluggy.PluginManager | None = None) -> dict[str, Registered]:
    """Every registered PostProcessor class by its ``name``."""
    pm = pm or make_plugin_manager()
    found: dict[str, Registered] = {}
    for impl in pm.hook.register_postprocessors.get_hookimpls():
        plugin_name = impl.plugin_name
        classes: list[type[PostProcessor]] = []
        impl.function(register=classes.append)
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, PostProcessor)) or not cls.name:
                raise PluginError(f"plugin {plugin_name!r} registered {cls!r}, not a named PostProcessor")
            check_api_version(getattr(cls, "api_version", None), f"post-processor {cls.name!r} ({plugin_name})")
            if cls.name in found:
                raise PluginError(
                    f"post-processor {cls.name!r} registered twice ({found[cls.name].plugin}, {plugin_name})"
                )
            found[cls.name] = Registered(cls, plugin_name, _SOURCES.get(plugin_name, plugin_name))
    return found


def get_postprocessor(name: str, pm: pluggy.PluginManager | None = None) -> Registered:
    found = postprocessors(pm)
    if name not in found:
        known = ", ".join(sorted(found)) or "none installed"
        broken = "".join(f"; {why}" for why in BROKEN.values())
        raise PluginError(f"unknown plugin {name!r} (installed: {known}){broken}")
    return found[name]


def by_side_info_format(pm: pluggy.PluginManager | None = None) -> dict[str, Registered]:
    """Post-processors keyed by the side-info format id they consume."""
    return {r.cls.side_info: r for r in postprocessors(pm).values() if r.cls.side_info}
