"""How good and how fast: ``genpost eval`` (a plugin against the plain base, measured the user's way) and
``genpost bench`` (speed against a plain transcode).

- ``rd``: one clip's rate-distortion evaluation (anchor ladder vs genpost's points), BD-rates, the verdict.
- ``testset``: many clips x many plugins in one run, the summary and the Markdown table.
- ``pool``: where the points run (this process or worker processes).
- ``measure``: one point against its clip's source, every metric in one decode of each.
- ``metrics`` (PSNR, MS-SSIM, XPSNR, BD-rate), ``perceptual`` (HaarPSI, FSIM), ``deepmetrics`` (LPIPS,
  DISTS), ``videometrics`` (ColorVideoVDP), ``naturalness`` (NIQE, flicker): the measures themselves.
- ``plot``: the RD plots of one run; ``preview``: one frame, base vs restored, as a PNG with its PSNR-Y and
  VMAF-NEG (``genpost preview``).
- ``bench``: decode -> restore -> encode speed per stage against PyAV's plain transcode; ``scaling``: fps
  at each worker count and what it predicts for a cluster (``bench --workers``).
"""
