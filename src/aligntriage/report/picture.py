"""Draw any scenario's state as an image from its observation channels (later channels paint over earlier)."""

from __future__ import annotations

import numpy as np

PALETTE = {
    "wall": (0.25, 0.25, 0.28),
    "pit": (0.55, 0.1, 0.1),
    "agent": (0.12, 0.45, 0.9),
    "coin": (0.95, 0.78, 0.1),
    "cheese": (0.95, 0.78, 0.1),
    "exit": (0.2, 0.75, 0.35),
}
_FALLBACK = [(0.6, 0.3, 0.75), (0.95, 0.5, 0.15), (0.3, 0.75, 0.75), (0.8, 0.4, 0.55), (0.5, 0.5, 0.2)]


def channel_colours(channels: tuple[str, ...]) -> dict[str, tuple[float, float, float]]:
    spare = iter(_FALLBACK * 4)
    return {name: PALETTE.get(name) or next(spare) for name in channels}


def obs_image(obs, channels: tuple[str, ...], skip: tuple[str, ...] = ()) -> np.ndarray:
    """An RGB float image [H, W, 3] of one observation [H, W, C] (channels named in ``skip`` left out), so
    reports can draw many enumerated states from precomputed observations without calling the world again."""
    obs = np.asarray(obs)
    if obs.ndim == 2:
        obs = obs[None]
    image = np.ones(obs.shape[:2] + (3,))
    colours = channel_colours(channels)
    draw_order = sorted(range(len(channels)), key=lambda k: channels[k] == "agent")
    for k in draw_order:
        if channels[k] not in skip:
            image[obs[..., k] > 0] = colours[channels[k]]
    return image


def state_image(world, state) -> np.ndarray:
    """An RGB float image [H, W, 3] of one state."""
    return obs_image(world.observe(state), world.channels)


def save_state_png(world, state, path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    image = state_image(world, state)
    height, width = image.shape[:2]
    fig, ax = plt.subplots(figsize=(max(3.0, width * 0.45), max(2.5, height * 0.45 + 0.8)))
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, width, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, height, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.5)
    ax.tick_params(which="both", bottom=False, left=False, labelbottom=False, labelleft=False)
    colours = channel_colours(world.channels)
    ax.legend(handles=[Patch(color=colours[c], label=c) for c in world.channels],
              loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=min(6, len(world.channels)), fontsize=8,
              frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
