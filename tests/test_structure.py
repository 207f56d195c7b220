"""genpost's layout rules, checked on its source: no module imports another module's private names, no
import cycle among genpost's modules (function-level imports included), only genpost.media imports av or
sets packet timing, the data flows one way between the folders (FOLDERS), sideinfo is plain Python, the
flat modules at the top are the plugin API (FLAT), and the README's "How it fits together" names every
folder and flat module there is."""

import ast
import re
import sys
from pathlib import Path

import genpost

ROOT = Path(genpost.__file__).resolve().parent
README = ROOT.parent / "README.md"

# genpost's folders, in the order the data flows (as the README lists them), and the folders each may import
# besides itself and the flat modules. A folder not listed fails test_every_folder_and_flat_module_has_its_place.
FOLDERS: dict[str, set[str]] = {
    "sideinfo": set(),  # side info <-> bytes on the wire (stdlib only: test_sideinfo_is_plain_python)
    "media": set(),  # bytes <-> frames
    "runner": {"media", "sideinfo"},  # frames + payloads through the plugins
    "jobs": {"runner", "media", "sideinfo"},  # files -> files: one command's work, and how it runs
    "eval": {"jobs", "runner", "media", "sideinfo"},  # how good and how fast
    "learned": {"jobs", "media"},  # the learned plugins' toolkit (its training pairs are coded by jobs)
    "builtins": set(),  # a plugin like any other: the plugin API only
    "cli": {"eval", "jobs", "learned", "media", "runner", "sideinfo"},  # the command line, on top of all
}
# the one import against the flow, and why
UPWARD = {("genpost.jobs.batch", "genpost.cli.checks"): "a manifest's jobs take the CLI's flags and are checked by them"}
# genpost's flat modules: the public plugin API and what it stands on, each with the folders it may import
FLAT: dict[str, set[str]] = {
    "__init__": {"sideinfo"},  # the names a plugin imports: PostProcessor, Frame, Option, hookimpl, BitReader, ...
    "types": set(),
    "errors": set(),
    "install": set(),
    "options": set(),
    "postprocessor": set(),
    "hookspecs": set(),
    "plugins": set(),
    "rdcost": set(),
    "contract": {"media"},
    "testing": {"media", "runner", "jobs", "learned"},  # for plugin authors' tests (pytest): nothing imports it
    "scaffold": set(),
    "__main__": {"cli"},
}


def modules() -> dict[str, tuple[Path, list[str]]]:
    """module name -> (file, package parts) for every .py under genpost/."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["genpost", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = parts
        else:
            package = parts[:-1]
        out[".".join(parts)] = (path, package)
    return out


def _absolute(node: ast.ImportFrom, package: list[str]) -> str | None:
    if not node.level:
        return node.module
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def analyse():
    """(import graph, private uses as (module, line, what))."""
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for name, (path, package) in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        aliases: dict[str, str] = {}  # local name -> genpost module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _absolute(node, package)
                if not base or not (base == "genpost" or base.startswith("genpost.")):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in mods:
                        graph[name].add(full)
                        aliases[alias.asname or alias.name] = full
                        continue
                    if base in mods and base != name:
                        graph[name].add(base)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and base != name:
                        private.append((name, node.lineno, f"from {base} import {alias.name}"))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in mods:
                        graph[name].add(alias.name)
                        if alias.asname:
                            aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                target = aliases[node.value.id]
                if node.attr.startswith("_") and not node.attr.startswith("__") and target != name:
                    private.append((name, node.lineno, f"{node.value.id}.{node.attr}"))
    for deps in graph.values():
        deps.discard("genpost")  # the package's own __init__ (version, public API) is a leaf
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_uses_another_modules_private_names():
    _, private = analyse()
    assert private == [], "\n".join(f"{m}:{line}: {what}" for m, line, what in private)


def test_no_import_cycles():
    graph, _ = analyse()
    assert cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_media_imports_av():
    for name, (path, _) in modules().items():
        if name == "genpost.media" or name.startswith("genpost.media."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name == "av" or a.name.startswith("av.") for a in node.names), name
            elif isinstance(node, ast.ImportFrom) and not node.level:
                assert not (node.module == "av" or node.module.startswith("av.")), name


PACKET_TIMING = {"pts", "dts", "time_base", "duration", "is_keyframe"}


def test_only_media_sets_packet_timing():
    """genpost.media hands out opaque packets: no other module sets their timing (it asks media, e.g.
    ``media.concat_packets``), so timestamps are edited in one place."""
    edits = []
    for name, (path, _) in modules().items():
        if name == "genpost.media" or name.startswith("genpost.media."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            else:
                continue
            for target in targets:
                for t in target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]:
                    own = isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                    if isinstance(t, ast.Attribute) and t.attr in PACKET_TIMING and not own:
                        edits.append(f"{name}:{t.lineno}: .{t.attr} =")
    assert edits == [], "\n".join(edits)


def place(module: str) -> str:
    """The folder a genpost module lives in, or its own name when it is flat (``genpost`` is __init__)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def test_every_folder_and_flat_module_has_its_place():
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    flat = {p.stem for p in ROOT.glob("*.py")}
    assert folders == set(FOLDERS), "a new folder takes a row in FOLDERS (what it may import) and in the README"
    assert flat == set(FLAT), "a new module goes in the folder of its job; the flat modules are the plugin API"


def flow_breaks(graph: dict[str, set[str]]) -> list[str]:
    """Imports against FOLDERS and FLAT: a folder importing one it may not, a flat module importing a folder
    it may not, or anything importing genpost.testing (a pytest plugin)."""
    breaks = []
    for module, deps in graph.items():
        here = place(module)
        for dep in deps:
            there = place(dep)
            if there == here or (module, dep) in UPWARD:
                continue
            if there == "testing" or there == "__main__":
                breaks.append(f"{module} -> {dep}")
            elif there in FOLDERS and there not in FOLDERS.get(here, FLAT.get(here, set())):
                breaks.append(f"{module} -> {dep}")
    return sorted(breaks)


def test_the_data_flows_one_way_between_folders():
    graph, _ = analyse()
    assert flow_breaks(graph) == []
    for module, dep in UPWARD:
        assert dep in graph[module], f"{module} no longer imports {dep}: drop it from UPWARD"


def test_the_flow_check_finds_breaks():
    graph = {
        "genpost.media.decode": {"genpost.runner.loop", "genpost.types"},  # media may not look up
        "genpost.sideinfo.nal": {"genpost.sideinfo.record", "genpost.errors"},
        "genpost.runner.loop": {"genpost.testing", "genpost.media"},  # nothing imports testing
        "genpost.errors": {"genpost.jobs.encode"},  # the API stands on no folder
        "genpost.jobs.batch": {"genpost.cli.checks"},  # the recorded exception
    }
    assert flow_breaks(graph) == [
        "genpost.errors -> genpost.jobs.encode",
        "genpost.media.decode -> genpost.runner.loop",
        "genpost.runner.loop -> genpost.testing",
    ]


def test_sideinfo_is_plain_python():
    """genpost.sideinfo imports the standard library, itself and genpost.errors only, so it can be imported,
    tested and fuzzed without av or numpy."""
    outside = []
    for name, (path, package) in modules().items():
        if not (name == "genpost.sideinfo" or name.startswith("genpost.sideinfo.")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [_absolute(node, package) or ""]
            else:
                continue
            for target in targets:
                top = target.split(".")[0]
                if top == "genpost":
                    if not (target.startswith("genpost.sideinfo") or target == "genpost.errors"):
                        outside.append(f"{name}: {target}")
                elif top != "__future__" and top not in sys.stdlib_module_names:
                    outside.append(f"{name}: {target}")
    assert outside == []


def test_every_package_says_its_job():
    """Each folder's __init__ opens with what the folder is for (the README's line is its summary)."""
    silent = [f for f in FOLDERS if not ast.get_docstring(ast.parse((ROOT / f / "__init__.py").read_text()))]
    assert silent == []


def how_it_fits_together() -> str:
    text = README.read_text()
    start = text.index("## How it fits together")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_names_every_folder_and_flat_module():
    """"How it fits together" names each folder of genpost/ as `genpost/NAME/` (with its job on that line), and
    each flat module as `genpost/NAME.py`; and names none that is not there."""
    section = how_it_fits_together()
    named_folders = set(re.findall(r"`genpost/(\w+)/`", section))
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert named_folders == folders
    named_modules = set(re.findall(r"`genpost/(\w+)\.py`", section))
    assert named_modules == {p.stem for p in ROOT.glob("*.py")}
