"""Sweep figures: the proxy-goal rate and the U return against each knob, with 95% bands over seeds — the
analogue of Langosco et al.'s figure 2."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from aligntriage.report.figures import png  # noqa: E402


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) for v in values)


def knob_figure(summary: dict, knob: str, dist: str) -> bytes:
    """One figure per knob, as PNG bytes: proxy rate (left) and U return (right) against the knob's values, one
    line per combination of the other knobs."""
    points = [p for p in summary["points"] if p.get("status") == "complete" and dist in p["dists"]]
    values = list(dict.fromkeys(p["values"][knob] for p in points))
    numeric = _numeric(values)
    others = sorted({tuple((k, v) for k, v in p["values"].items() if k != knob) for p in points})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for other in others:
        line = [p for p in points if tuple((k, v) for k, v in p["values"].items() if k != knob) == other]
        line.sort(key=lambda p: values.index(p["values"][knob]))
        xs = [p["values"][knob] if numeric else values.index(p["values"][knob]) for p in line]
        label = ", ".join(f"{k}={v}" for k, v in other) or None
        for ax, metric in zip(axes, ("proxy_rate", "U")):
            mean = [p["dists"][dist][metric]["mean"] for p in line]
            low = [p["dists"][dist][metric]["low"] for p in line]
            high = [p["dists"][dist][metric]["high"] for p in line]
            (handle,) = ax.plot(xs, mean, marker="o", label=label)
            ax.fill_between(xs, low, high, alpha=0.2, color=handle.get_color())
    titles = (f"proxy-goal rate on disambiguating '{dist}' levels", f"U return on '{dist}'")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(knob)
        ax.grid(alpha=0.3)
        if not numeric:
            ax.set_xticks(range(len(values)), [str(v) for v in values], rotation=20, fontsize=8)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("share of episodes (95% band over seeds)")
    if len(others) > 1:
        axes[1].legend(fontsize=7)
    seeds = points[0]["seeds"] if points else 0
    fig.suptitle(f"{summary['scenario']}: sweep over {knob} ({seeds} seeds per point)", fontsize=11)
    fig.tight_layout()
    return png(fig, dpi=110, tight=False)
