"""The benchmark's chart: one panel per workload, a bar per configuration, speed-up over PyTorch fp32."""

from __future__ import annotations

from pathlib import Path

from .core import BASELINE
from .report import WORKLOADS


def draw(results: list[dict], path: Path, machine: str = "", app: dict | None = None) -> Path | None:
    """Write the chart to `path` (PNG); None when no workload has figures. `app`: per workload, the
    configuration the app serves on this CPU (`report.app_builds`), marked "(app)"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for name, info in WORKLOADS.items():
        rows = [r for r in results if r.get("workload") == name and "median" in r]
        if rows:
            panels.append((info, (app or {}).get(name, {}).get("config"), rows))
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.2 + 0.55 * sum(len(p[2]) for p in panels)), squeeze=False)
    for ax, (info, app_config, rows) in zip(axes[:, 0], panels, strict=True):
        base = next((r["median"] for r in rows if r["config"] == BASELINE), None)
        names = [r["config"] + (" (app)" if r["config"] == app_config else "") for r in rows]
        values = [r["median"] for r in rows]
        unit = rows[0]["unit"]
        colors = ["#7f7f7f" if n.startswith("pytorch") else "#0068b5" for n in names]
        bars = ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(info.title, loc="left", fontsize=9, fontweight="bold")
        ax.set_xlabel(f"{unit}, median", fontsize=8)
        ax.tick_params(labelsize=8)
        for bar, value in zip(bars, values, strict=True):
            label = f"{value:.3g}"
            if base:
                label += f"  ({base / value:.2f}×)"
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + label, va="center", fontsize=8)
        ax.set_xlim(0, max(values) * 1.45)
        ax.spines[["top", "right"]].set_visible(False)
    title = "Latency by configuration (lower is better; × = speed-up over PyTorch fp32)"
    fig.suptitle(title + (f"\n{machine}" if machine else ""), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # room for the two-line title
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
