"""Grid mechanics shared by the gridworld scenarios: moving on a walled grid, one-hot planes, text rendering.

Positions are flat cell indices (row * width + col) so states stay small integer pytrees.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

MOVES = ("up", "down", "left", "right")
_DELTAS = jnp.array([[-1, 0], [1, 0], [0, -1], [0, 1]], jnp.int32)


def move(pos: jax.Array, action: jax.Array, walls: jax.Array) -> jax.Array:
    """Cell reached by a move action (0..3) from ``pos``; walls and the border block. Other actions stay."""
    height, width = walls.shape
    row, col = pos // width, pos % width
    delta = _DELTAS[jnp.clip(action, 0, 3)]
    nrow = jnp.clip(row + delta[0], 0, height - 1)
    ncol = jnp.clip(col + delta[1], 0, width - 1)
    target = nrow * width + ncol
    blocked = walls.reshape(-1)[target]
    is_move = action < 4
    return jnp.where(is_move & ~blocked, target, pos).astype(jnp.int32)


def plane(pos: jax.Array, shape: tuple[int, int], on: jax.Array | bool = True) -> jax.Array:
    """A boolean plane with one cell set (or none when ``on`` is false)."""
    return ((jnp.arange(shape[0] * shape[1]) == pos) & on).reshape(shape)


def stack_planes(planes: list[jax.Array]) -> jax.Array:
    """``jnp.stack(planes, axis=-1)`` (same values, shape and dtype), written as a stack on a leading axis and a
    transpose.

    XLA on CPU compiles a stack on the last axis into a loop that picks the source plane element by element; the
    transposed form computes each plane as a contiguous run and fuses better with what consumes the batch of
    observations. In benchmarks/world_speed.py (4,096 coinrun envs) it made the whole auto-resetting step about
    1.3x faster, and maze's about 1.25x.
    """
    return jnp.moveaxis(jnp.stack(planes, axis=0), 0, -1)


def render_rows(layers: list[tuple[str, jax.Array]], shape: tuple[int, int], empty: str = ".") -> list[str]:
    """Text picture of a grid: later layers draw over earlier ones."""
    canvas = np.full(shape, empty, dtype="<U1")
    for char, mask in layers:
        canvas[np.asarray(mask, bool)] = char
    return ["".join(row) for row in canvas]


def random_cell(key: jax.Array, allowed: jax.Array) -> jax.Array:
    """A uniformly random flat index among the True cells of ``allowed`` (which must have one)."""
    flat = allowed.reshape(-1)
    logits = jnp.where(flat, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)
