"""RD plots of one evaluation run: rate against each metric for anchor and genpost, and the restored-minus-
anchor PSNR per plane against rate (the "never worse" view, where a 0.05 dB loss is visible)."""

from __future__ import annotations

import os
from pathlib import Path

from ..install import hint
from ..jobs.outputs import atomic_output, check_paths
from .rd import PLANES, EvalError

PLOT_METRICS = (
    ("psnr_y_mse", "psnr_y_mse", "PSNR-Y from mean MSE (dB)"),
    ("ms_ssim_db", "ms_ssim", "MS-SSIM (dB)"),
    ("xpsnr", "xpsnr", "XPSNR-Y (dB)"),
    ("vmaf_neg", "vmaf_neg", "VMAF NEG"),
    ("haarpsi", "haarpsi", "HaarPSI"),
)


def _log_rate_axis(ax) -> None:
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("kbps")
    ax.grid(True, which="both", alpha=0.3)


def plot(result: dict, output: str | os.PathLike) -> None:
    """RD curves and the delta-dB panel as a PNG, written atomically."""
    try:
        import matplotlib
    except ImportError:
        raise EvalError(f"--plot needs matplotlib: {hint('eval', ('matplotlib',))}") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    check_paths([result["source"]], output)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, (key, bd_key, label) in zip(axes.flat, PLOT_METRICS):
        for name, style in (("anchor", "o-"), ("genpost", "s--")):
            pts = sorted(result[name], key=lambda p: p["kbps"])
            ax.plot([p["kbps"] for p in pts], [p[key] for p in pts], style, label=name)
        bd = result["bd_rate"][bd_key]
        ax.set_title(f"{label}: BD-rate {bd:+.2f} %" if bd is not None else f"{label}: BD-rate undefined")
        _log_rate_axis(ax)
        ax.set_ylabel(label)
        ax.legend()
    ax = axes.flat[-1]
    rates = [g["kbps"] for g in result["genpost"]]
    for plane, style in zip(PLANES, ("o-", "s-", "^-")):
        ax.plot(rates, [d[f"delta_psnr_{plane}"] for d in result["vs_anchor"]], style, label=plane.upper())
    ax.axhline(0.0, color="black", linewidth=0.8)
    _log_rate_axis(ax)
    ax.set_ylabel("restored - anchor PSNR (dB)")
    ax.set_title("delta dB vs rate (below 0: worse than the base)")
    ax.legend()
    fig.suptitle(f"{Path(result['source']).name}: {result['plugin']} vs {result['anchor_kind']}")
    fig.tight_layout()
    with atomic_output(output) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
