"""One error hierarchy: every genpost error is a GenpostError whose class carries its exit code, the README's
table of classes matches the code, and a plugin's broken contract is an error, not a fallback."""

import importlib
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

import genpost
from genpost.errors import ContractError, GenpostError, PayloadError, PipelineError, PluginError
from genpost.postprocessor import Context, PostProcessor
from genpost.runner.loop import EnhanceReport, FrameRestorer, PluginFailure, PluginStats
from genpost.types import Frame, StreamInfo

README = Path(__file__).resolve().parent.parent / "README.md"


def all_error_classes() -> set[type]:
    for info in pkgutil.walk_packages(genpost.__path__, "genpost."):
        importlib.import_module(info.name)

    def below(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    return {GenpostError, *(c for c in below(GenpostError) if c.__module__.startswith("genpost."))}


def documented() -> dict[int, set[str]]:
    text = README.read_text()
    section = text.split("### Error classes", 1)[1]
    table = {}
    for code, names in re.findall(r"^\| (\d+) \| (`.*`) \|$", section, re.M):
        table[int(code)] = set(re.findall(r"`(\w+)`", names))
    return table


def test_every_exception_class_in_genpost_is_a_genpost_error():
    """No exception class in genpost/ outside the hierarchy (found by name in the source)."""
    classes = {c.__name__ for c in all_error_classes()}
    root = Path(genpost.__file__).parent
    for path in root.rglob("*.py"):
        for name, bases in re.findall(r"^class (\w+)\(([^)]*)\):", path.read_text(), re.M):
            if re.search(r"Error|Exception|Warning\b", bases) or name.endswith(("Error", "Exception")):
                assert name in classes, f"{path.relative_to(root)}: {name}({bases}) is not a GenpostError"


def test_readme_table_matches_the_classes():
    code_side: dict[int, set[str]] = {}
    for cls in all_error_classes():
        assert isinstance(cls.exit_code, int), cls
        code_side.setdefault(cls.exit_code, set()).add(cls.__name__)
    assert documented() == code_side


def test_every_class_code_is_a_documented_exit_code():
    from genpost.errors import EXIT_CODES

    assert {cls.exit_code for cls in all_error_classes()} <= set(EXIT_CODES)


def test_old_import_paths_still_work():
    from genpost import PayloadError as p1
    from genpost.jobs.pipeline import OutputPathError
    from genpost.jobs.pipeline import PipelineError as p2
    from genpost.media import MediaError
    from genpost.plugins import PluginError as p3
    from genpost.postprocessor import PayloadError as p4

    assert p1 is p4 is PayloadError and p2 is PipelineError and p3 is PluginError
    assert MediaError.exit_code == 3 and OutputPathError.exit_code == 4
    assert issubclass(PayloadError, ValueError)  # plugins may still catch it as ValueError


class _Shrinks(PostProcessor):
    name, version = "shrinks", "1"

    def restore(self, frame, payload, ctx):
        return frame.replace(y=frame.y[:-2])  # breaks the contract: another shape


class _Rejects(PostProcessor):
    name, version = "rejects", "1"

    def restore(self, frame, payload, ctx):
        raise PayloadError("unusable")


def _restorer(proc, **kw):
    report = EnhanceReport("x", 0, [proc.name], {proc.name: PluginStats()})
    stream = StreamInfo(16, 16, 8, "hevc", None, None)
    return FrameRestorer([proc], None, Context(stream=stream), report, **kw), report


def _frame():
    y = np.full((16, 16), 100, np.uint8)
    c = np.full((8, 8), 128, np.uint8)
    return Frame(y, c.copy(), c.copy(), bit_depth=8, index=0)


def test_a_broken_contract_is_an_error_not_a_fallback():
    restorer, report = _restorer(_Shrinks())
    frame = _frame()
    out = restorer(frame)
    stats = report.per_plugin["shrinks"]
    assert out is frame and stats.errors == 1 and stats.fallbacks == 0
    assert "ContractError" in stats.first_error
    with pytest.raises(PluginFailure) as info:
        _restorer(_Shrinks(), on_plugin_error="fail")[0](_frame())
    assert isinstance(info.value.__cause__, ContractError) and info.value.exit_code == 6


def test_a_rejected_payload_is_a_fallback():
    restorer, report = _restorer(_Rejects(), on_plugin_error="fail")
    restorer(_frame())
    stats = report.per_plugin["rejects"]
    assert stats.fallbacks == 1 and stats.errors == 0


def test_one_budget_for_every_runner():
    restorer, _ = _restorer(_Rejects(), max_errors=1)
    restorer(_frame())
    with pytest.raises(PipelineError, match="more than --max-errors 1"):
        restorer(_frame())
