"""``genpost plugin new NAME``: a ready-to-install plugin package from the templates in genpost/templates/plugin.

The generated package registers an identity post-processor that already sends and checks side info, so
``pip install -e`` makes it usable at once and its contract tests pass before any model is written.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from string import Template

from . import __api_version__, __version__
from .errors import GenpostError

TEMPLATES = Path(__file__).parent / "templates" / "plugin"
NAME_RULE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
MAX_NAME = 40
RESERVED = {"none", "builtins", "genpost", "all", "plugin", "plugins"}


class PluginNameError(GenpostError, ValueError):
    """NAME cannot name a plugin (bad characters, reserved, or already taken)."""

    exit_code = 2


class ScaffoldTargetError(GenpostError, OSError):
    """The folder to create the package in is unusable (missing, or the package folder already exists)."""

    exit_code = 4


@dataclass(frozen=True)
class Names:
    """Every spelling of one plugin name the templates need."""

    name: str  # post-processor name, entry-point name, --plugin NAME, side-info format prefix
    dist: str  # distribution (pip) name
    package: str  # import package
    cls: str  # PostProcessor subclass

    @classmethod
    def of(cls, name: str) -> Names:
        camel = "".join(part.capitalize() for part in name.split("-"))
        if keyword.iskeyword(camel) or not camel.isidentifier():
            camel += "PostProcessor"
        return cls(name, f"genpost-{name}", "genpost_" + name.replace("-", "_"), camel)


def installed_names() -> set[str]:
    """Entry-point names and post-processor names already installed (best effort: a broken plugin elsewhere
    must not stop a new one from being created)."""
    names = {ep.name for ep in entry_points(group="genpost")}
    try:
        from .plugins import postprocessors

        names |= set(postprocessors())
    except Exception:
        pass
    return names


def validate_name(name: str) -> None:
    if not NAME_RULE.match(name) or len(name) > MAX_NAME:
        raise PluginNameError(
            f"plugin name {name!r} is not valid: use 1..{MAX_NAME} lowercase letters, digits and single hyphens, "
            "starting with a letter (e.g. my-filter)"
        )
    if name in RESERVED:
        raise PluginNameError(f"plugin name {name!r} is reserved; choose another")
    if name in installed_names():
        raise PluginNameError(f"plugin name {name!r} is already taken by an installed plugin; choose another")


def render(names: Names) -> dict[str, str]:
    """Relative path -> file text for every template file."""
    values = {
        "name": names.name,
        "dist": names.dist,
        "package": names.package,
        "cls": names.cls,
        "genpost_version": __version__,
        "api_version": str(__api_version__),
    }
    files = {}
    for src in sorted(TEMPLATES.rglob("*.tmpl")):
        rel = src.relative_to(TEMPLATES).with_suffix("")  # drop .tmpl
        parts = [names.package if p == "package" else p for p in rel.parts]
        files[os.path.join(*parts)] = Template(src.read_text()).substitute(values)
    return files


def new_plugin(name: str, parent: str | os.PathLike = ".") -> Path:
    """Create ``parent/genpost-NAME`` and return its path; nothing is left behind on failure."""
    validate_name(name)
    names = Names.of(name)
    parent = Path(parent)
    if not parent.is_dir():
        raise ScaffoldTargetError(f"folder {parent} does not exist")
    target = parent / names.dist
    if target.exists():
        raise ScaffoldTargetError(f"{target} already exists; choose another --dir or name")
    files = render(names)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{names.dist}.", dir=parent))
    except OSError as exc:
        raise ScaffoldTargetError(f"cannot write in {parent}: {exc.strerror}") from None
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        os.rename(staging, target)  # the package appears complete or not at all
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ScaffoldTargetError(f"cannot create {target}: {exc.strerror}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
