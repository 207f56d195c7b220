"""genpost.testing: the contract kit passes the built-in wiener and fails plugins that break the contract.

Every check runs on real frames (the kit's carphone clip coded by x265 through genpost.jobs.pipeline); each
broken plugin below breaks exactly one rule, and the kit must name that rule.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import textwrap
from pathlib import Path

import numpy as np
import pytest

from genpost import PayloadError, PostProcessor, WeightsFile
from genpost.builtins.wiener import WienerFilter
from genpost.testing import (
    CLIP,
    ContractRunner,
    ContractViolation,
    PostProcessorContract,
    check_declaration,
    check_import_without_torch,
    check_malformed_payloads,
    check_restore,
    check_same_frames,
    check_weights,
    frame_digest,
)

pytest_plugins = ["pytester"]


class TestWienerContract(PostProcessorContract):
    """The built-in passes the kit; a low lambda makes it send side info on most frames of the tiny clip."""

    postprocessor = WienerFilter
    options = {"wiener.lambda_scale": "0.05"}


def test_kit_clip_is_small_real_and_makes_wiener_send_side_info(tmp_path):
    assert CLIP.stat().st_size <= 250_000 and CLIP.read_bytes().startswith(b"YUV4MPEG2 W176 H144")
    runner = ContractRunner(WienerFilter, tmp_path, options=dict(TestWienerContract.options))
    for bit_depth in (8, 10):
        enc = runner.encode(bit_depth)
        assert enc.frames == 6 and {f.dtype for f in enc.decoded} == {np.dtype("uint8" if bit_depth == 8 else "uint16")}
        sent = [i for i, p in enc.trace.analyzed.items() if p]
        assert len(sent) >= 3, "the round-trip tests would be vacuous"


# ---------------------------------------------------------------- a correct plugin and broken ones


class Identity(PostProcessor):
    """Sends a 2-byte payload (version, frame index // 2: runs of two equal payloads), returns the frame."""

    name = "kit-identity"
    version = "1.0"
    side_info = "kit-identity/1"

    def analyze(self, source, decoded, ctx):
        return bytes([1, decoded.index // 2])

    def restore(self, decoded, payload, ctx):
        if payload is not None and (len(payload) != 2 or payload[0] != 1):
            raise PayloadError("bad kit-identity payload")
        return decoded


class FloatPlanes(Identity):
    def restore(self, decoded, payload, ctx):
        return decoded.with_planes(*(p.astype(np.float32) for p in decoded.planes))


class LosesPts(Identity):
    def restore(self, decoded, payload, ctx):
        return decoded.replace(pts=None)


class Overflows(Identity):
    def restore(self, decoded, payload, ctx):
        return decoded.with_planes(decoded.y | np.array(0xFC00, decoded.dtype), decoded.u, decoded.v)


class MutatesInput(Identity):
    def restore(self, decoded, payload, ctx):
        decoded.y[0, 0] ^= 1
        return decoded


class CrashesOnBadPayload(Identity):
    def restore(self, decoded, payload, ctx):
        if payload is not None and payload[1] > 200:  # IndexError on a 1-byte payload
            raise PayloadError("strength out of range")
        return decoded


class NoDefaultMode(Identity):
    def restore(self, decoded, payload, ctx):
        if payload is None:
            raise PayloadError("needs side info")
        return decoded


class Nondeterministic(Identity):
    def analyze(self, source, decoded, ctx):
        return bytes([1, secrets.randbelow(256)])  # ignores ctx.seed


class ReturnsText(Identity):
    def analyze(self, source, decoded, ctx):
        return "12"


class ReadsItsOption(Identity):
    """Sends the value of its ``mark`` option, read under ``self.name`` (as docs/plugins.md shows)."""

    def analyze(self, source, decoded, ctx):
        return bytes([1, int(ctx.option(self.name, "mark", "0"))])


def test_the_kit_hands_the_plugin_its_options_under_its_own_name(tmp_path):
    """The kit runs a renamed subclass; options given as ``PLUGIN.KEY`` must still reach ``self.name``."""
    runner = ContractRunner(ReadsItsOption, tmp_path, options={"kit-identity.mark": "7"})
    enc = runner.encode(8)
    assert set(enc.trace.analyzed.values()) == {bytes([1, 7])}
    _, out = runner.enhance(enc.path)
    assert out.exists()


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> ContractRunner:
    return ContractRunner(Identity, tmp_path_factory.mktemp("kit"))


@pytest.fixture(scope="module", params=[8, 10])
def encoded(runner, request):
    return runner.encode(request.param)


def test_a_correct_plugin_passes_the_frame_checks(runner, encoded):
    ctx = runner.decoder_context(encoded)
    for frame in encoded.decoded:
        check_restore(Identity(), frame, None, ctx)
        check_restore(Identity(), frame, encoded.payload(frame.index), ctx)
        assert check_malformed_payloads(Identity(), frame, encoded.payload(frame.index), ctx) >= 12
    runner.check_deterministic(encoded, seed=5)


@pytest.mark.parametrize(
    "cls,message",
    [
        (FloatPlanes, "changed plane y from (144, 176) uint"),
        (LosesPts, "changed pts from"),
        (MutatesInput, "modified its input frame in place"),
        (NoDefaultMode, "raised PayloadError without a payload"),
    ],
)
def test_kit_catches_restore_that_breaks_the_frame(runner, encoded, cls, message):
    frame = encoded.decoded[1]
    frame = frame.with_planes(*(p.copy() for p in frame.planes))  # MutatesInput must not touch the cache
    with pytest.raises(ContractViolation, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_restore(cls(), frame, None, runner.decoder_context(encoded))


def test_kit_catches_samples_beyond_the_bit_depth(runner):
    enc = runner.encode(10)
    with pytest.raises(ContractViolation, match=r"holds \d+ > 1023 \(10-bit\)"):
        check_restore(Overflows(), enc.decoded[0], None, runner.decoder_context(enc))


def test_kit_catches_a_crash_on_a_malformed_payload(runner, encoded):
    frame = encoded.decoded[0]
    with pytest.raises(ContractViolation, match="raised IndexError.*raise genpost.PayloadError"):
        check_malformed_payloads(CrashesOnBadPayload(), frame, encoded.payload(0), runner.decoder_context(encoded))


def test_kit_catches_nondeterminism(tmp_path, runner):
    flaky = ContractRunner(Nondeterministic, tmp_path)
    with pytest.raises(ContractViolation, match="analyze is not deterministic under seed 3"):
        flaky.check_deterministic(flaky.encode(8), seed=3)


def test_kit_catches_analyze_returning_something_else_than_bytes(tmp_path):
    with pytest.raises(ContractViolation, match="returned str, not bytes"):
        ContractRunner(ReturnsText, tmp_path).encode(8)


def test_round_trip_check_fails_when_side_info_is_lost(runner):
    """An MP4 data track does not survive a plain remux to MPEG-TS: the check must say which frames lost it."""
    enc = runner.encode(8, "track", ".mp4")
    runner.check_round_trip(enc)
    remuxed = runner.remux(enc.path, ".ts")
    with pytest.raises(ContractViolation, match=r"frames \[0, 1, 2, 3, 4, 5\] got other payloads"):
        runner.check_round_trip(enc, remuxed, "track after remux")


def test_plain_decode_check_fails_on_other_frames(runner):
    eight, ten = runner.encode(8), runner.encode(10)
    base = {f.index: frame_digest(f) for f in eight.decoded}
    check_same_frames(base, eight.path, "8-bit")
    with pytest.raises(ContractViolation, match=r"frames \[0, 1, 2, 3, 4, 5\] differ"):
        check_same_frames(base, ten.path, "10-bit stream vs 8-bit base")


@pytest.mark.parametrize(
    "attrs,message",
    [
        ({"side_info": "kit-identity"}, "must end in a format version"),
        ({"side_info": "kit identity/1"}, "printable ASCII characters without spaces"),
        ({"name": "none"}, "reserved"),
        ({"api_version": 2}, "api_version is 2; this genpost provides 1"),
        ({"weights": ("model.safetensors",)}, "genpost.WeightsFile"),
    ],
)
def test_kit_catches_bad_declarations(attrs, message):
    check_declaration(Identity)
    with pytest.raises(ContractViolation, match=message):
        check_declaration(type("Bad", (Identity,), attrs))


def test_weights_check_resolves_next_to_the_module_and_verifies_sha256(tmp_path):
    blob = np.arange(1000, dtype=np.float32).tobytes()
    (tmp_path / "model.bin").write_bytes(blob)
    good = hashlib.sha256(blob).hexdigest()
    check_weights(type("Good", (Identity,), {"weights": (WeightsFile(str(tmp_path / "model.bin"), good),)}))
    wrong = type("Wrong", (Identity,), {"weights": (WeightsFile(str(tmp_path / "model.bin"), "0" * 64),)})
    with pytest.raises(ContractViolation, match="sha256 .* != declared 0000"):
        check_weights(wrong)
    missing = type("Missing", (Identity,), {"weights": (WeightsFile("weights/absent.safetensors", good),)})
    with pytest.raises(ContractViolation, match=r"weights/absent.safetensors not found at .*tests/weights/absent"):
        check_weights(missing)


def test_import_check_fails_for_a_module_that_imports_torch(tmp_path, monkeypatch):
    """torch is not installed here, so a stand-in package named torch plays it: the check looks only at
    which modules an import pulls in."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    (tmp_path / "eager_plugin.py").write_text("import torch\n")
    (tmp_path / "lazy_plugin.py").write_text("def setup():\n    import torch\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    check_import_without_torch(["lazy_plugin", "genpost.builtins.wiener"])
    with pytest.raises(ContractViolation, match="importing eager_plugin imports torch; import it in setup"):
        check_import_without_torch(["eager_plugin"])
    with pytest.raises(ContractViolation, match="importing no_such_plugin failed: ModuleNotFoundError"):
        check_import_without_torch(["no_such_plugin"])


def test_the_pytest_base_class_reports_exactly_the_broken_rules(pytester):
    """Run the kit as a plugin author would, on a plugin that crashes on damaged payloads and ignores the seed."""
    pytester.makepyfile(
        test_broken_plugin=textwrap.dedent(
            """
            import secrets
            from genpost import PayloadError, PostProcessor
            from genpost.testing import PostProcessorContract

            class Broken(PostProcessor):
                name = "broken"
                version = "0.1"
                side_info = "broken/1"

                def analyze(self, source, decoded, ctx):
                    return bytes([1, secrets.randbelow(256)])

                def restore(self, decoded, payload, ctx):
                    if payload is not None and payload[1] > 255:
                        raise PayloadError("never")
                    return decoded

            class TestBrokenContract(PostProcessorContract):
                postprocessor = Broken
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", "-rf")
    result.assert_outcomes(passed=17, failed=3, skipped=1)
    failed = sorted(line.split("::")[-1].split(" ")[0] for line in result.outlines if line.startswith("FAILED"))
    assert failed == [
        "test_deterministic_under_seed",
        "test_malformed_payloads_degrade_to_default_mode[10]",
        "test_malformed_payloads_degrade_to_default_mode[8]",
    ]
    result.stdout.fnmatch_lines(["*raised IndexError*", "*analyze is not deterministic under seed 1234*"], consecutive=False)


def test_the_worked_example_in_docs_passes_the_kit(pytester):
    """docs/plugins.md's dc-offset example, file by file, must pass the contract kit with its own tests."""
    doc = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    files = re.findall(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", doc, flags=re.DOTALL)
    assert {name for name, _ in files} == {
        "pyproject.toml",
        "genpost_dc_offset/__init__.py",
        "genpost_dc_offset/postprocessor.py",
        "tests/test_contract.py",
    }
    for name, text in files:
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", "-rs")
    result.assert_outcomes(passed=20, skipped=1)
    result.stdout.fnmatch_lines(["*declares no weights*"])
