"""The safety/usefulness Pareto figure: one point per protocol (95% intervals as error bars) and the curves traced
by the defer and editing fractions, in the layout of the paper's figures."""

from __future__ import annotations

from aligntriage.report.figures import png

COLOURS = {"no-protocol": "#d62728", "trusted-only": "#7f7f7f", "upfront-auditing": "#9467bd",
           "trusted-monitoring": "#1f77b4", "defer-to-trusted": "#2ca02c", "trusted-editing": "#ff7f0e"}


def _errors(cell: dict) -> list[float]:
    return [max(cell["mean"] - cell["low"], 0.0), max(cell["high"] - cell["mean"], 0.0)]


def pareto_png(result: dict, title: str) -> bytes:
    """Safety against usefulness of every protocol (with the fraction curves), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    for key, points in result.get("curves", {}).items():
        xs = [p["usefulness"]["mean"] for p in points]
        ys = [p["safety"]["mean"] for p in points]
        ax.plot(xs, ys, "-", color=COLOURS.get(key, "k"), alpha=0.45, lw=1.5)
        for p, x, y in zip(points, xs, ys):
            ax.annotate(f"{p['fraction']:.0%}", (x, y), fontsize=6, color=COLOURS.get(key, "k"), alpha=0.8,
                        xytext=(2, 2), textcoords="offset points")
    for row in result["protocols"]:
        u, s = row["usefulness"], row["safety"]
        ax.errorbar(u["mean"], s["mean"], xerr=[[e] for e in _errors(u)], yerr=[[e] for e in _errors(s)], fmt="o",
                    ms=7, capsize=3, color=COLOURS.get(row["protocol"], "k"), label=row["label"])
    ax.set_xlabel("usefulness (trusted alone = 0, untrusted alone = 1)")
    ax.set_ylabel("safety (vs the red team's best attack rate)")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return png(fig, dpi="figure", tight=False)
