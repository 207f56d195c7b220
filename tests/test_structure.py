"""genpost's layout rules, checked on its source: no module imports another module's private names, no
import cycle among genpost's modules (function-level imports included), no module over 600 lines, and
only genpost.media imports av."""

import ast
from pathlib import Path

import genpost

ROOT = Path(genpost.__file__).resolve().parent
MAX_LINES = 600


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


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


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
