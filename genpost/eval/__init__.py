"""genpost eval: how good a plugin is against the plain base, measured the user's way.

- ``rd``: one clip's rate-distortion evaluation (anchor ladder vs genpost's points), BD-rates, the verdict.
- ``testset``: many clips x many plugins in one run, the summary and the Markdown table.
- ``pool``: where the points run (this process or worker processes).
- ``measure``: one point against its clip's source, every metric in one decode of each.
- ``metrics`` (PSNR, MS-SSIM, XPSNR, BD-rate), ``perceptual`` (HaarPSI, FSIM), ``deepmetrics`` (LPIPS,
  DISTS), ``videometrics`` (ColorVideoVDP), ``naturalness`` (NIQE, flicker): the measures themselves.
- ``plot``: the RD plots of one run.
"""
