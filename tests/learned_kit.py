"""What the four first-party learned plugins' test modules share (tests/test_plugin_*.py): the contract
kits' test classes, the module fixtures, the Context maker and the end-to-end check. Imported like
conftest (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    base_and_restored_psnr_y,
    encode_first_frames,
    first_frames,
    plugin_context,
)

from genpost import media
from genpost.jobs import pipeline
from genpost.learned.rd import plane_sse
from genpost.testing import NetworkContract, PostProcessorContract
from genpost.types import to_bit_depth


def contract_kits(cls, options: dict[str, str], network_options: dict[str, str] | None = None) -> tuple[type, type]:
    """The genpost.testing kits for ``cls``: a ``PostProcessorContract`` with ``options`` and a
    ``NetworkContract`` (option prefix ``cls.name``) with ``network_options``. Bind them to ``Test*`` names in
    the test module so pytest collects them."""
    stem = "".join(part.title() for part in cls.name.split("-"))
    kit = type(f"Test{stem}Contract", (PostProcessorContract,), {"postprocessor": cls, "options": options})
    net = type(f"Test{stem}Network", (NetworkContract,),
               {"postprocessor": cls, "option_prefix": cls.name, "options": network_options or {}})  # fmt: skip
    return kit, net


def plugin_fixtures(cls, frames: int, options: dict[str, str] | None = None):
    """Module-scoped fixtures ``coded``: the first ``frames`` carphone frames coded with ``cls``'s side info
    (conftest.encode_first_frames with ``options``), ``proc``: a ``cls`` set up on the CPU, and ``pair``: the
    (source, decode) of the coded clip's first frame. Bind them as ``coded, proc, pair = plugin_fixtures(...)``
    in the test module (pytest finds fixtures among the module's names)."""

    @pytest.fixture(scope="module")
    def coded(tmp_path_factory):
        return encode_first_frames(tmp_path_factory.mktemp(cls.name), cls.name, frames, options)

    @pytest.fixture(scope="module")
    def proc():
        p = cls()
        p.setup("cpu")
        return p

    @pytest.fixture(scope="module")
    def pair(coded):
        return first_pair(coded)

    return coded, proc, pair


def first_pair(coded) -> tuple:
    """(source, decode) of the first frame of a ``coded`` fixture's clip."""
    src, mkv, _, _ = coded
    with media.InputFile(src) as s, media.InputFile(mkv) as b:
        return next(zip(s.frames(), b.frames()))


def context_maker(plugin: str):
    """``ctx(frame, qp=37, **options)``: a Context for ``frame``'s stream with ``plugin``'s options."""

    def ctx(frame, qp: int | None = 37, **options):
        return plugin_context(plugin, frame, options, qp)

    return ctx


def check_restores_end_to_end(coded, plugin: str, frames: int, gain_db: float) -> None:
    """The ``coded`` clip sent side info (the RD choice paid on at least one frame), ``genpost enhance``
    restores every frame without a fallback, and mean PSNR-Y beats the base decode by more than ``gain_db``."""
    src, mkv, report, tmp = coded
    assert report.frames == frames and report.records[f"{plugin}/1"] >= 1  # the RD choice sent side info
    out = tmp / "restored.y4m"
    rep = pipeline.enhance(mkv, out, media.EncoderSettings(codec="y4m"), plugins=[plugin])
    assert rep.per_plugin[plugin].fallbacks == 0
    base, restored, n = base_and_restored_psnr_y(src, mkv, out)
    assert n == frames
    assert restored > base + gain_db, (base, restored)


def check_ten_bit_restores_at_its_depth(proc, payload: bytes, ctx) -> None:
    """The first carphone frame at 10 bits restores with ``payload`` to a 10-bit frame that agrees with the
    8-bit restoration to within rounding (the networks see samples normalised by the bit depth); ``ctx`` is
    the module's ``context_maker``."""
    frame8 = first_frames(1)[0]
    frame = to_bit_depth(frame8, 10)
    out = proc.restore(frame, payload, ctx(frame))
    assert out.y.dtype == np.uint16 and out.bit_depth == 10 and int(out.y.max()) <= 1023
    out8 = proc.restore(frame8, payload, ctx(frame8))
    assert np.abs(out.y.astype(np.int32) / 4 - out8.y).mean() < 0.5


def check_rd_choice_per_plane(proc, source, decoded, ctx, decoder) -> bytes:
    """``analyze`` under ``ctx`` never makes a plane worse than the decode, and where the default mode (no
    side info, restored under the ``decoder`` Context) loses on no plane, what it sends costs no more
    D + lambda * R than that; otherwise it sends. Returns the payload."""
    payload = proc.analyze(source, decoded, ctx)
    base = plane_sse(source, decoded)
    nothing = plane_sse(source, proc.restore(decoded, None, decoder))
    chosen = plane_sse(source, proc.restore(decoded, payload or None, decoder))
    bits = ctx.record_overhead_bits + 8 * len(payload) if payload else 0
    assert (chosen <= base).all(), (chosen, base)  # never worse than the decode, per plane
    if (nothing <= base).all():  # the default mode is a candidate only where it loses on no plane
        assert chosen.sum() + ctx.lagrangian * bits <= nothing.sum()
    else:
        assert payload
    return payload
