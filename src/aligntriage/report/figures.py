"""The report's figures, one function per concept, each returning image bytes (PNG, or GIF for animations).

Bytes rather than files, because the HTML report embeds every figure as a data URI so it opens offline as one
file. Matplotlib runs on the Agg backend; strips and animations are composed with Pillow straight from pixel
arrays, which is far faster than a matplotlib figure per frame.
"""

from __future__ import annotations

import io
import math
import textwrap
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from aligntriage.report.page import share as explained_share  # noqa: E402

DPI = 110
AGENT, R_OPT, U_OPT, TRAIN, CHANCE = "#1f6fd1", "#e08a1e", "#2e9e5b", "#8c8c8c", "#d9d9d9"
SERIES = ("#1f6fd1", "#7aa9e6", "#8c8c8c", "#e08a1e", "#2e9e5b", "#b05fc9")


def png(fig, dpi: int | str = DPI, tight: bool = True) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed (every caller is done with it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return buffer.getvalue()


class Bars(NamedTuple):
    """One series of a bar chart: a value per category with its 95% interval (None: no interval)."""

    label: str
    mean: list[float]
    low: list[float] | None
    high: list[float] | None
    colour: str


def _grouped_bars(ax, categories: list[str], series: list[Bars], percent: bool = False):
    """Bars per category, one per series, each with its 95% interval when it has one."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(categories))
    scale = 100.0 if percent else 1.0
    for k, bars in enumerate(series):
        mean = np.nan_to_num(np.asarray(bars.mean, float))
        yerr = None
        if bars.low is not None and bars.high is not None:
            low = np.nan_to_num(mean - np.asarray(bars.low, float)).clip(0)
            high = np.nan_to_num(np.asarray(bars.high, float) - mean).clip(0)
            yerr = np.array([low, high]) * scale
        ax.bar(x + (k - (len(series) - 1) / 2) * width, mean * scale, width, label=bars.label, color=bars.colour,
               yerr=yerr, capsize=3, error_kw={"elinewidth": 1, "ecolor": "#333"})
    ax.set_xticks(x, categories)
    ax.axhline(0, color="#444", linewidth=0.8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def training_curves(rows: list[dict]) -> bytes | None:
    """Mean episode return and success rate against environment steps, one line per seed."""
    rows = [r for r in rows if isinstance(r.get("steps"), (int, float))]
    if not rows:
        return None
    metrics = [m for m in ("mean_return", "success_rate") if any(m in r for r in rows)]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.0), squeeze=False)
    seeds = sorted({r.get("seed", 0) for r in rows})
    for ax, metric in zip(axes[0], metrics):
        for k, seed in enumerate(seeds):
            points = sorted((r["steps"], r[metric]) for r in rows if r.get("seed", 0) == seed
                            and isinstance(r.get(metric), (int, float)))
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, color=SERIES[k % len(SERIES)], linewidth=1.5, label=f"seed {seed}")
        ax.set_xlabel("environment steps (per seed)")
        ax.set_title({"mean_return": "mean episode return (R)", "success_rate": "success rate"}[metric], fontsize=10)
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
        if metric == "success_rate":
            ax.set_ylim(-0.02, 1.02)
    if len(seeds) > 1:
        axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return png(fig)


def outcome_bars(categories: list[str], series: list[Bars], intended: str) -> bytes:
    """How episodes end (share of episodes per outcome category, 95% interval), one series per view."""
    labels = [textwrap.fill(c + (" (intended goal)" if c == intended else ""), 14) for c in categories]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(categories) + 2.0), 3.4))
    _grouped_bars(ax, labels, series, percent=True)
    ax.set_ylabel("% of episodes")
    ax.set_ylim(0, 105)
    ax.set_title("How episodes end (first candidate goal achieved, else how it stopped)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return png(fig)


def inference_bars(hypotheses: list[str], panels: list[tuple[str, Bars, list[float]]], intended: str) -> bytes:
    """Goal inference per view: each hypothesis's mixture weight (bars, with their interval) and the share of the
    agent's predictable behaviour it explains (labels)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False, sharey=True)
    colours = [U_OPT if n == intended else (TRAIN if n == "random" else R_OPT) for n in hypotheses]
    for ax, (title, weights, explained) in zip(axes[0], panels):
        _grouped_bars(ax, [n + ("\n(intended)" if n == intended else "") for n in hypotheses],
                      [weights._replace(colour=colours)])
        for x, (weight, share) in enumerate(zip(weights.mean, explained)):
            text = "baseline" if hypotheses[x] == "random" else f"explains {explained_share(share)}"
            ax.annotate(text, (x, np.nan_to_num(weight)), ha="center", va="bottom", fontsize=7, xytext=(0, 3),
                        textcoords="offset points")
        ax.set_ylim(0, 1.2)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(textwrap.fill(title, 36), fontsize=9)
    axes[0][0].set_ylabel("mixture weight")
    fig.tight_layout()
    return png(fig)


def values_by_term(terms: list[str], panels: list[tuple[str, list[Bars]]]) -> bytes:
    """R, U and every U term: expected discounted return from a level's start per policy, per view."""
    labels = [textwrap.fill(t, 12) for t in terms]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.0, 0.8 * len(terms) + 1.4) * len(panels), 3.2),
                             squeeze=False, sharey=True)
    for ax, (title, series) in zip(axes[0], panels):
        _grouped_bars(ax, labels, series)
        ax.set_title(textwrap.fill(title, 36), fontsize=9)
    axes[0][0].set_ylabel("expected discounted return")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.06))
    fig.tight_layout()
    return png(fig)


def _panel_grid(count: int, shape: tuple[int, int]):
    """Subplots for ``count`` pictures of a level in a balanced grid about 30 cells wide (the page's width at a
    readable cell size); unused slots are hidden."""
    height, width = shape
    most = max(1, min(count, 30 // max(width, 1)))
    rows = math.ceil(count / most)
    cols = math.ceil(count / rows)
    cell = min(0.42, 8.0 / (cols * width))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * (width * cell + 0.3) + 1.0, rows * (height * cell + 0.45)
                                                  + 0.5), squeeze=False, layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def _level_axes(ax, backdrop: np.ndarray, title: str):
    height, width = backdrop.shape[:2]
    ax.imshow(backdrop, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.vlines(np.arange(-0.5, width, 1), -0.5, height - 0.5, colors="white", linewidth=0.6)
    ax.hlines(np.arange(-0.5, height, 1), -0.5, width - 0.5, colors="white", linewidth=0.6)
    ax.set_title(title, fontsize=9)


def _start_marker(ax, start: tuple[int, int] | None):
    if start is not None:
        ax.text(start[0] - 0.42, start[1] - 0.42, "S", ha="left", va="top", fontsize=8, fontweight="bold",
                color="#111", bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"})


def _outline_objects(ax, backdrop: np.ndarray):
    """Outline every non-empty cell of the level in its own colour, so objects stay visible under a heatmap."""
    from matplotlib.patches import Rectangle

    occupied = (backdrop < 0.999).any(axis=2)
    for y, x in zip(*np.nonzero(occupied)):
        ax.add_patch(Rectangle((x - 0.5 + 0.06, y - 0.5 + 0.06), 0.88, 0.88, fill=False,
                               edgecolor=backdrop[y, x], linewidth=2.5))


def heatmaps(backdrop: np.ndarray, panels: list[tuple[str, np.ndarray]], start: tuple[int, int] | None,
             legend: list[tuple[str, tuple]]) -> bytes:
    """Expected visits per episode of every cell, one panel per policy, on a shared colour scale."""
    fig, axes = _panel_grid(len(panels), backdrop.shape[:2])
    top = max(max(float(grid.max()) for _, grid in panels), 1e-9)
    norm = PowerNorm(gamma=0.5, vmin=0, vmax=top)
    image = None
    for ax, (title, grid) in zip(axes, panels):
        _level_axes(ax, backdrop, title)
        shown = np.ma.masked_where(grid <= 1e-3, grid)
        image = ax.imshow(shown, cmap="magma_r", norm=norm, alpha=0.85, interpolation="nearest")
        _outline_objects(ax, backdrop)
        _start_marker(ax, start)
    fig.colorbar(image, ax=axes, shrink=0.9, label="expected visits per episode")
    _legend(fig, legend)
    return png(fig)


def vector_fields(backdrop: np.ndarray, panels: list[tuple[str, np.ndarray]], start: tuple[int, int] | None,
                  legend: list[tuple[str, tuple]]) -> bytes:
    """At every cell reachable in the start situation, an arrow for the expected move (sum over moves of
    probability times direction) and a dot sized by the probability of actions that are not moves."""
    fig, axes = _panel_grid(len(panels), backdrop.shape[:2])
    for ax, (title, field) in zip(axes, panels):
        _level_axes(ax, backdrop, title)
        if field.size:
            x, y, dx, dy, stay = field.T
            ax.quiver(x, y, dx, dy, angles="xy", scale_units="xy", scale=1 / 0.45, width=0.012, color="#111",
                      headwidth=3.5, headlength=4, headaxislength=3.5, pivot="tail")
            strong = stay > 0.05
            ax.scatter(x[strong], y[strong], s=120 * stay[strong], color="#c0392b", zorder=3)
        _start_marker(ax, start)
    _legend(fig, legend)
    return png(fig)


def _legend(fig, legend: list[tuple[str, tuple]]):
    from matplotlib.patches import Patch

    if legend:
        fig.legend(handles=[Patch(color=colour, label=name) for name, colour in legend], loc="outside lower center",
                   ncol=min(6, len(legend)), fontsize=8, frameon=False)


def upscale(image: np.ndarray, cell: int) -> np.ndarray:
    """An RGB float image [H, W, 3] as uint8 pixels, ``cell`` pixels per grid cell, with light grid lines and a
    dark border so an empty level still shows its extent."""
    pixels = np.kron((np.clip(image, 0, 1) * 255).astype(np.uint8), np.ones((cell, cell, 1), np.uint8))
    pixels[::cell, :, :] = 228
    pixels[:, ::cell, :] = 228
    pixels = np.pad(pixels, ((0, 1), (0, 1), (0, 0)), constant_values=228)
    pixels[[0, -1], :, :] = 90
    pixels[:, [0, -1], :] = 90
    return pixels


def _cell_size(shape: tuple[int, int], target: int = 150) -> int:
    return int(max(8, min(28, target // max(shape))))


def episode_strip(frames: list[np.ndarray], path: list[tuple[int, int]], max_frames: int = 12,
                  columns_px: int = 900) -> bytes:
    """A path overview (the route drawn over the start frame) followed by evenly spaced frames, wrapped into
    rows, each labelled with its step number."""
    cell = _cell_size(frames[0].shape[:2])
    chosen = sorted({round(i) for i in np.linspace(0, len(frames) - 1, min(max_frames, len(frames)))})
    overview = Image.fromarray(upscale(frames[0], cell))
    draw = ImageDraw.Draw(overview)
    points = [((x + 0.5) * cell, (y + 0.5) * cell) for x, y in path]
    if len(points) > 1:
        draw.line(points, fill=(220, 30, 30), width=max(2, cell // 6), joint="curve")
    if points:
        r = max(2, cell // 5)
        end = points[-1]
        draw.ellipse([end[0] - r, end[1] - r, end[0] + r, end[1] + r], fill=(220, 30, 30))
    tiles = [("route", overview)] + [(f"step {i}", Image.fromarray(upscale(frames[i], cell))) for i in chosen]
    font = ImageFont.load_default(size=11)
    label_h, gap = 15, 8
    tile_w, tile_h = overview.width, overview.height + label_h
    per_row = max(1, min(len(tiles), (columns_px + gap) // (tile_w + gap)))
    rows = math.ceil(len(tiles) / per_row)
    sheet = Image.new("RGB", (per_row * (tile_w + gap) - gap, rows * (tile_h + gap) - gap), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (label, tile) in enumerate(tiles):
        x, y = (k % per_row) * (tile_w + gap), (k // per_row) * (tile_h + gap)
        draw.text((x + 1, y), label, fill=(40, 40, 40), font=font)
        sheet.paste(tile, (x, y + label_h))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def episode_gif(frames: list[np.ndarray], ms_per_frame: int = 250) -> bytes:
    """The episode as an animated GIF that holds its last frame a little longer, looping."""
    cell = _cell_size(frames[0].shape[:2], target=220)
    images = [Image.fromarray(upscale(f, cell)).convert("P", palette=Image.ADAPTIVE, colors=32) for f in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [ms_per_frame * 6]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   optimize=False)
    return buffer.getvalue()
