"""docs/cli.md's contract, case by case: every bad value answers with its documented exit code and one line
on stderr before any work starts, with nothing written; user text is printed verbatim; the exit-code table
in the docs is the one in the code; declared plugin options are what the plugins read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# the CLI with the ffmpeg extra's two modules made unimportable (as on an install without the extra)
NO_FFMPEG = "import sys; sys.modules['ffmpeg'] = sys.modules['imageio_ffmpeg'] = None; sys.argv[0] = 'genpost'; " \
    "from genpost.cli import main; main()"  # fmt: skip


def run(*args, cwd=None, env=None, stdin=None, code: str | None = None):
    head = ["-c", code] if code else ["-m", "genpost.cli"]
    return subprocess.run([sys.executable, *head, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, stdin=stdin, timeout=300)  # fmt: skip


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def base(tmp_path_factory, carphone) -> Path:
    """Six carphone frames coded by genpost encode with wiener side info (the input of the enhance cases)."""
    folder = tmp_path_factory.mktemp("contract")
    src = folder / "six.y4m"
    parts = carphone.read_bytes().split(b"FRAME")
    src.write_bytes(b"FRAME".join(parts[:7]))
    out = folder / "base.mkv"
    result = run("encode", src, "-o", out, "--qp", "37", "-p", "wiener", "--option", "wiener.lambda_scale=0.02", "-q")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def raw(base, tmp_path_factory) -> Path:
    """The same six frames as a raw .265 stream (no timing)."""
    out = tmp_path_factory.mktemp("raw") / "w_sei.265"
    src = base.parent / "six.y4m"
    result = run("encode", src, "-o", out, "--qp", "37", "-p", "wiener", "--option", "wiener.lambda_scale=0.02", "-q")
    assert result.returncode == 0, result.stderr
    return out


ENHANCE = ["enhance", "{base}", "-o", "out.mkv"]
ENCODE = ["encode", "{carphone}", "-o", "out.mkv"]
CASES = {
    # plugin options: unknown plugin or key, bad type, out of range, not among the choices
    "option-not-a-number": (ENHANCE + ["-p", "gan-enhance", "--option", "gan-enhance.strength=abc"], 2,
                            "gan-enhance.strength must be a number in 0..2"),
    "option-not-a-choice": (ENHANCE + ["-p", "gan-enhance", "--option", "gan-enhance.backend=tensorrt"], 2,
                            "must be one of onnx, torch"),
    "option-out-of-range": (ENHANCE + ["--option", "rectified-flow.steps=9"], 2, "an integer in 1..4"),
    "option-not-an-integer": (ENHANCE + ["--option", "residual-diffusion.steps=1.5"], 2, "an integer in 0..8"),
    "option-misspelled-key": (ENHANCE + ["-p", "wiener", "--option", "wiener.lamda_scale=3"], 2,
                              "wiener has no option 'lamda_scale' (it takes: alternatives, lambda_scale, period_sets, record_frames)"),
    "option-unknown-plugin": (ENHANCE + ["--option", "nosuch.key=1"], 2, "no plugin 'nosuch'"),
    "option-bare-unknown": (ENHANCE + ["--option", "strenght=1"], 2, "no installed plugin takes 'strenght'"),
    "option-bare-bad": (ENHANCE + ["--option", "strength=3"], 2, "gan-enhance.strength must be a number in 0..2"),
    "option-adapt": (ENCODE + ["-p", "gan-enhance", "--option", "gan-enhance.adapt=huge"], 2,
                     "one of auto, off, small, full"),
    "option-no-equals": (ENHANCE + ["--option", "strength"], 2, "--option wants PLUGIN.KEY=VALUE"),
    "option-pipe-strength": (["pipe", "--strength", "5"], 2, "gan-enhance.strength must be"),
    "option-eval": (["eval", "{carphone}", "-p", "wiener", "--option", "wiener.record_frames=0"], 2,
                    "wiener.record_frames must be a number in 1..1000"),
    # core values
    "encode-qp": (ENCODE + ["--qp", "60"], 2, "--qp 60: must be in 0..51"),
    "encode-crf": (ENCODE + ["--crf", "99"], 2, "--crf 99: must be in 0..51"),
    "encode-preset": (ENCODE + ["--preset", "sloow"], 2, "--preset sloow: use one of ultrafast"),
    "encode-carriage": (ENCODE + ["--carriage", "foo"], 2,
                        "Invalid value for '--carriage': 'foo' is not one of 'sei', 'nnpfc', 'track', 'sidecar'"),
    "encode-on-plugin-error": (ENCODE + ["--on-plugin-error", "ignore"], 2, "'ignore' is not one of 'fail', 'skip'"),
    "eval-carriage": (["eval", "{carphone}", "-p", "wiener", "--carriage", "track"], 2, "'track' is not one of 'sei', 'nnpfc'"),
    "encode-max-errors": (ENCODE + ["--max-errors", "-1"], 2, "--max-errors -1: must be at least 0"),
    "enhance-codec": (ENHANCE + ["--codec", "foo"], 2, "--codec foo: use one of libx265, libx264, ffv1, y4m, copy, vvc"),
    "enhance-qp": (ENHANCE + ["--qp", "60"], 2, "--qp 60: must be in 0..51"),
    "enhance-vvc-qp": (ENHANCE + ["--codec", "vvc", "--qp", "70"], 2, "--qp 70: must be in 0..63 (VVC)"),
    "enhance-vvc-preset": (ENHANCE + ["--codec", "vvc", "--preset", "veryslow"], 2, "use one of faster, fast, medium"),
    "enhance-preset": (ENHANCE + ["--preset", "sloow"], 2, "--preset sloow"),
    "eval-qp": (["eval", "{carphone}", "-p", "wiener", "--qp", "27,70"], 2, "--qp 70: must be in 0..51"),
    "preview-mode": (["preview", "{base}", "-o", "out.png", "--mode", "foo"], 2, "Invalid value for '--mode': 'foo' is not one of 'side', 'split', 'diff'"),
    "bench-cuda": (["bench", "{base}", "-p", "none", "--device", "cuda"], 2, "--device cuda: no CUDA device"),
    "bench-device": (["bench", "{base}", "-p", "none", "--device", "tpu"], 2, "--device tpu: use cpu or cuda"),
    # click's own usage errors, on one line too
    "unknown-flag": (["inspect", "{base}", "--nope"], 2, "No such option: --nope"),
    "wrong-type": (ENHANCE + ["--qp", "abc"], 2, "Invalid value for '--qp'"),
    "unknown-command": (["nosuch"], 2, "No such command 'nosuch'"),
    # the ffmpeg route without the ffmpeg extra says what the feature needs, not "VMAF needs ..."
    "vvc-without-extra": (ENHANCE + ["--codec", "vvc"], 2, '--codec vvc runs the ffmpeg binary and needs'),
    "chain-without-extra": (ENHANCE + ["--chain", "broadcast-hd"], 2, "--chain runs the ffmpeg binary"),
    "vf-post-without-extra": (ENHANCE + ["--vf-post", "scale=88:-2"], 2, "--vf-post runs the ffmpeg binary"),
    # raw streams need --fps; outputs a command cannot write are bad usage, named as the user gave them
    "enhance-raw-without-fps": (["enhance", "{raw}", "-o", "out.mkv"], 2, "w_sei.265 is a raw stream without timing; give --fps"),
    "encode-to-y4m": (["encode", "{carphone}", "-o", "x.y4m"], 2, "(genpost encode writes an HEVC base), not '.y4m'"),
    "encode-to-266": (["encode", "{carphone}", "-o", "x.266"], 2, "(genpost encode writes an HEVC base), not '.266'"),
    "encode-to-avi": (["encode", "{carphone}", "-o", "x.avi"], 2,
                      "x.avi: the output extension must be one of .mkv, .mka, .mp4, .mov, .ts, .m2ts, .265, .hevc, .h265 "),
    "enhance-no-extension": (["enhance", "{base}", "-o", "noext"], 2, "noext: the output extension must be one of"),
    "enhance-to-avi": (["enhance", "{base}", "-o", "x.avi"], 2, "x.avi: the output extension must be one of .mkv"),
    # a --sideinfo sidecar that is not there is unreadable input
    "enhance-sideinfo-missing": (ENHANCE + ["--sideinfo", "nosuch.gpsi"], 3, "cannot read side info nosuch.gpsi"),
    "inspect-sideinfo-missing": (["inspect", "{base}", "--sideinfo", "nosuch.gpsi"], 3, "cannot read side info nosuch.gpsi"),
    "pipe-sideinfo-missing": (["pipe", "--sideinfo", "nosuch.gpsi"], 3, "cannot read side info nosuch.gpsi"),
    # VMAF without its optional packages: the right extra, before anything is decoded or encoded (one line)
    "preview-without-extra": (["preview", "{base}", "-o", "p.png"], 2,
                              """(genpost's "ffmpeg" extra), or give --no-vmaf"""),
    "eval-without-extra": (["eval", "{carphone}", "-p", "wiener", "--qp", "37,42"], 2, """(genpost's "eval" extra)"""),
    # user text verbatim: brackets in paths are not console markup
    "markup-in-input": (["enhance", "in[bold]x.mkv", "-o", "out.mkv"], 3, "in[bold]x.mkv"),
    "closing-tag-in-input": (["inspect", "a[/b]c.mkv"], 3, "a[/b]c.mkv"),
    "markup-in-output-folder": (["enhance", "{base}", "-o", "no[red]dir/out.mkv"], 4, "no[red]dir"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_case_is_one_line_with_its_exit_code_and_writes_nothing(case, base, raw, carphone, tmp_path):
    args, code, says = CASES[case]
    args = [a.format(base=base, raw=raw, carphone=carphone) for a in args]
    before = sorted(os.listdir(base.parent))
    env = {"CUDA_VISIBLE_DEVICES": ""} if case == "bench-cuda" else None
    result = run(*args, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                 code=NO_FFMPEG if case.endswith("without-extra") else None)  # fmt: skip
    err = lines(result.stderr)
    assert result.returncode == code, result.stderr
    assert len(err) == 1 and err[0].startswith("genpost: error: "), result.stderr
    assert says in err[0], err[0]
    vmaf_case = case.startswith(("preview-", "eval-"))  # the ffmpeg route must not say "VMAF needs ..."
    assert "Traceback" not in result.stderr and ("VMAF" not in result.stderr or vmaf_case) and result.stdout == ""
    assert list(tmp_path.iterdir()) == [] and sorted(os.listdir(base.parent)) == before


def test_the_exit_code_table_in_docs_is_the_code():
    from genpost.errors import EXIT_CODES

    doc = (ROOT / "docs" / "cli.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", doc, flags=re.MULTILINE))
    assert {int(k): v for k, v in table.items()} == EXIT_CODES


def test_version():
    from genpost import __version__

    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip().startswith(f"genpost {__version__} ")


def test_plugin_none_and_pipe_warn_only_when_it_is_news(base, tmp_path):
    none = run("enhance", base, "-o", tmp_path / "none.mkv", "--plugin", "none", "-q")
    assert none.returncode == 0 and lines(none.stderr) == [f"wrote {tmp_path / 'none.mkv'}: 6 frames, plugins: none, "
                                                           "fallback frames: 0, malformed records: 0, output: copy"]  # fmt: skip
    y4m = tmp_path / "in.y4m"
    assert run("enhance", base, "-o", y4m, "--plugin", "none", "-q").returncode == 0

    def pipe(*args):
        with open(y4m, "rb") as fh:
            return subprocess.run([sys.executable, "-m", "genpost.cli", "pipe", *args], stdin=fh,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)  # fmt: skip

    piped = pipe("-p", "wiener")
    assert piped.returncode == 0 and lines(piped.stderr) == ["genpost pipe: 6 frames, plugins: wiener, fallback frames: 0"]
    bare = pipe()
    warning, _ = lines(bare.stderr)
    assert warning.startswith("genpost: warning: no post-processor applies") and "re-mux" not in warning


def test_inspect_of_a_raw_stream_says_fps_unknown(tmp_path, carphone):
    raw = tmp_path / "six.265"
    src = tmp_path / "six.y4m"
    src.write_bytes(b"FRAME".join(carphone.read_bytes().split(b"FRAME")[:7]))
    assert run("encode", src, "-o", raw, "--qp", "37", "-q").returncode == 0
    shown = run("inspect", raw)
    assert shown.returncode == 0 and "fps unknown" in shown.stdout
    assert "?" not in shown.stdout and "None" not in shown.stdout


def test_mp4_is_hvc1_with_provenance(base, tmp_path):
    from genpost import media

    for args in (["-p", "wiener"], ["--plugin", "none"]):  # re-encoded, and stream-copied
        out = tmp_path / f"out{len(args[1])}.mp4"
        assert run("enhance", base, "-o", out, "-q", *args).returncode == 0
        with media.InputFile(out) as inp:
            assert inp.video.codec_context.codec_tag == "hvc1"
            assert inp.tags.get("genpost_postprocessors") == ("wiener/2.4" if args[1] == "wiener" else None)


def test_plugins_list_their_declared_options():
    import json

    result = run("plugins", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for name in ("wiener", "gan-enhance", "rectified-flow", "residual-diffusion", "syntax-diffusion"):
        if name in rows:
            assert rows[name]["options"], name
    strength = next(o for o in rows["gan-enhance"]["options"] if o["name"] == "strength")
    assert (strength["type"], strength["min"], strength["max"], strength["default"]) == ("float", 0.0, 2.0, "0.0")


# an option read by its key in a plugin's code: ctx.option/ctx.number(PLUGIN, "key", ...) or a reader's (ctx, "key")
READS = re.compile(r'ctx\.(?:option|number)\(\s*(?:self\.name|"([\w-]+)")\s*,\s*"(\w+)"|\w*(?:option|number|read)\(\s*ctx\s*,\s*"(\w+)"')


def test_every_option_a_plugin_reads_is_declared():
    """One declaration per option: a key a plugin's package reads but does not declare would be refused on
    the command line (docs/results.md's `--option wiener.period_sets=0` was)."""
    import inspect

    from genpost.plugins import postprocessors

    for name, reg in postprocessors().items():
        if reg.cls.options is None:  # declares none: its keys pass through unchecked
            continue
        declared = {o.name for o in reg.cls.options}
        reads = set()
        for path in Path(inspect.getfile(reg.cls)).parent.rglob("*.py"):
            for plugin, key, read_key in READS.findall(path.read_text()):
                if plugin in ("", name):
                    reads.add(key or read_key)
        assert reads and reads <= declared, (name, sorted(reads - declared))


def test_results_md_wiener_period_sets_is_taken():
    """`--option wiener.period_sets=0` (docs/results.md) is accepted, and turns the period's sets off."""
    from conftest import first_frames

    from genpost import Context, StreamInfo
    from genpost.builtins.wiener import WienerFilter
    from genpost.cli.checks import parse_options

    assert parse_options(["wiener.period_sets=0"]) == {"wiener.period_sets": "0"}
    sources = first_frames(2)
    pairs = [(f, f.with_planes(*((p // 8 * 8 + 4).astype(p.dtype) for p in f.planes))) for f in sources]
    info = StreamInfo(sources[0].width, sources[0].height, 8, "hevc", None, None)

    def adapt(**options):
        opts = {f"wiener.{k}": v for k, v in options.items()}
        return WienerFilter().adapt(pairs, Context(stream=info, qp=37, options={"wiener.lambda_scale": "0.001", **opts}))

    assert adapt() != b"" and adapt(period_sets="0") == b""


def test_declared_defaults_parse_under_their_own_declaration():
    from genpost.plugins import postprocessors

    for name, reg in postprocessors().items():
        for option in reg.cls.options or ():
            option.parse(option.default, name)  # a default outside its own range would be refused up front


def test_install_hints_name_pyproject_extras():
    from genpost.install import EXTRAS

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {k: tuple(v) for k, v in extras.items() if k != "test"} == EXTRAS


def test_help_into_a_closed_pipe_exits_without_a_traceback():
    """``genpost encode --help | head -1``: the reader goes away mid-help; that is no internal error."""
    proc = subprocess.Popen([sys.executable, "-m", "genpost.cli", "encode", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 1, 120, 141)
    assert "Traceback" not in err
