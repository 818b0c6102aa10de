"""The benchmark's chart: one panel per workload, a bar per configuration, speed-up over PyTorch fp32."""

from __future__ import annotations

from pathlib import Path

# (workload, result key holding the time, unit label, scale to that unit)
PANELS = (
    ("classification", "median_ms", "ms per request (128 tokens)", 1.0),
    ("translation", "median_ms", "ms per request (20 new tokens)", 1.0),
    ("sd", "unet_step_s", "s per UNet step (512×512, CFG)", 1.0),
    ("controlnet", "step_s_median", "s per step (ControlNet + UNet, 512×512, CFG)", 1.0),
)
BASELINE = "pytorch-fp32"


def draw(results: list[dict], path: Path, machine: str = "") -> Path | None:
    """Write the chart to `path` (PNG); None when no workload has figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for workload, key, unit, scale in PANELS:
        rows = [r for r in results if r.get("workload") == workload and key in r]
        if rows:
            panels.append((workload, key, unit, scale, rows))
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.2 + 0.55 * sum(len(p[4]) for p in panels)), squeeze=False)
    for ax, (workload, key, unit, scale, rows) in zip(axes[:, 0], panels, strict=True):
        base = next((r[key] for r in rows if r["config"] == BASELINE), None)
        names = [r["config"] for r in rows]
        values = [r[key] * scale for r in rows]
        colors = ["#7f7f7f" if n.startswith("pytorch") else "#0068b5" for n in names]
        bars = ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(workload, loc="left", fontsize=10, fontweight="bold")
        ax.set_xlabel(unit, fontsize=8)
        ax.tick_params(labelsize=8)
        for bar, value in zip(bars, values, strict=True):
            label = f"{value:.3g}"
            if base:
                label += f"  ({base * scale / value:.2f}×)"
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + label, va="center", fontsize=8)
        ax.set_xlim(0, max(values) * 1.45)
        ax.spines[["top", "right"]].set_visible(False)
    title = "Latency by configuration (lower is better; × = speed-up over PyTorch fp32)"
    fig.suptitle(title + (f"\n{machine}" if machine else ""), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
