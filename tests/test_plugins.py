"""Plugin discovery through a real pip-installed entry point, the allowlist, and import hygiene."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genpost import hookspecs

ROOT = Path(__file__).parent.parent

PLUGIN_SRC = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "genpost-brighten"
        version = "0.3.0"

        [project.entry-points.genpost]
        brighten = "genpost_brighten"
    """,
    "genpost_brighten/__init__.py": """
        import numpy as np
        from genpost import PostProcessor, hookimpl


        class Brighten(PostProcessor):
            name = "brighten"
            version = "0.3.0"
            description = "adds 4 to luma (a test plugin)"

            def restore(self, decoded, payload, ctx):
                y = np.minimum(decoded.y.astype(np.int32) + 4, decoded.max_value).astype(decoded.dtype)
                return decoded.with_planes(y, decoded.u, decoded.v)


        @hookimpl
        def register_postprocessors(register):
            register(Brighten)
    """,
}


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> Path:
    """pip-install a third-party plugin package into a target folder (a real install with its metadata)."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    for name, text in PLUGIN_SRC.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(src)],
        check=True,
    )
    return target


def genpost(*args, env=None, check=True):
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "genpost.cli", *args], capture_output=True, text=True, env=full, check=check)


def test_third_party_plugin_is_discovered_and_runs(installed_plugin, carphone, tmp_path):
    env = {"PYTHONPATH": str(installed_plugin)}
    rows = json.loads(genpost("plugins", "--json", env=env).stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["brighten"]["source"] == "genpost-brighten 0.3.0"
    assert by_name["wiener"]["plugin"] == "builtins"
    out = tmp_path / "bright.y4m"
    genpost("enhance", str(carphone), "-o", str(out), "--plugin", "brighten", "-q", env=env)
    from conftest import decode_all

    a, b = decode_all(carphone)[0], decode_all(out)[0]
    assert (b.y.astype(int) - a.y.astype(int)).mean() > 3.5


def test_allowlist_limits_which_plugins_load(installed_plugin):
    env = {"PYTHONPATH": str(installed_plugin), "GENPOST_LOAD_PLUGINS": "builtins"}
    names = {r["name"] for r in json.loads(genpost("plugins", "--json", env=env).stdout)}
    assert names == {"wiener"}
    env["GENPOST_LOAD_PLUGINS"] = "brighten"
    names = {r["name"] for r in json.loads(genpost("plugins", "--json", env=env).stdout)}
    assert names == {"brighten"}


def test_importing_genpost_and_builtins_does_not_import_torch():
    code = "import sys, genpost, genpost.cli, genpost.jobs.pipeline, genpost.builtins.wiener; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_every_hook_is_documented_with_its_signature():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    hooks = [name for name in dir(hookspecs) if getattr(getattr(hookspecs, name), "genpost_spec", None)]
    assert hooks, "no hookspecs found"
    for name in hooks:
        func = getattr(hookspecs, name)
        args = ", ".join(func.__code__.co_varnames[: func.__code__.co_argcount])
        assert re.search(rf"`{name}\({re.escape(args)}\)`", doc), f"hook {name}({args}) missing from docs/plugins.md"
