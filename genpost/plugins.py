"""The plugin manager factory: entry points of group ``genpost``, filtered by an allowlist."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .postprocessor import PostProcessor

ENTRY_POINT_GROUP = "genpost"
ALLOWLIST_ENV = "GENPOST_LOAD_PLUGINS"


class PluginError(RuntimeError):
    """A plugin could not be found, loaded or registered."""

    exit_code = 5


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
        except Exception as exc:  # a broken third-party package must not take the CLI down
            raise PluginError(f"plugin {ep.name!r} failed to load: {exc}") from exc
        pm.register(module, name=ep.name)
        dist = getattr(ep, "dist", None)
        _SOURCES[ep.name] = f"{dist.name} {dist.version}" if dist is not None else ep.value
    return pm


_SOURCES: dict[str, str] = {}


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
        raise PluginError(f"unknown plugin {name!r} (installed: {known})")
    return found[name]


def by_side_info_format(pm: pluggy.PluginManager | None = None) -> dict[str, Registered]:
    """Post-processors keyed by the side-info format id they consume."""
    return {r.cls.side_info: r for r in postprocessors(pm).values() if r.cls.side_info}
