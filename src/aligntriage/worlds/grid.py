"""Grid mechanics shared by the gridworld scenarios: moving on a walled grid, one-hot planes, text rendering.

Positions are flat cell indices (row * width + col) so states stay small integer pytrees.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

MOVES = ("up", "down", "left", "right")


def move(pos: jax.Array, action: jax.Array, walls: jax.Array) -> jax.Array:
    """Cell reached by a move action (0..3) from ``pos``; walls and the border block. Other actions stay.

    The target cell is one lookup in the grid's ``neighbours`` table (a constant of the compiled program), not
    row/column arithmetic: batched under XLA on CPU, a chain of cheap elementwise ops is recomputed inside every
    fused consumer of its result (each state field's auto-reset select, the reward, the end flags, the
    observation), while a lookup is computed once.
    """
    target = jnp.asarray(neighbours(walls.shape))[pos, jnp.clip(action, 0, 3)]
    blocked = walls.reshape(-1)[target]
    return jnp.where((action < 4) & ~blocked, target, pos).astype(jnp.int32)


@functools.lru_cache(maxsize=None)
def neighbours(shape: tuple[int, int]) -> np.ndarray:
    """``[H * W, 4]`` int32: the cell each move action (0..3) reaches from each cell, walls ignored (a move off the
    border stays put)."""
    height, width = shape
    rows, cols = np.divmod(np.arange(height * width), width)
    deltas = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])
    nrow = np.clip(rows[:, None] + deltas[None, :, 0], 0, height - 1)
    ncol = np.clip(cols[:, None] + deltas[None, :, 1], 0, width - 1)
    table = (nrow * width + ncol).astype(np.int32)
    table.flags.writeable = False
    return table


def union(planes: jax.Array) -> jax.Array:
    """The cells set in any of the ``[k, H * W]`` flat boolean planes (none when k is 0): ``planes.any(axis=0)``.

    As k - 1 elementwise ORs: XLA fuses a reduction over k into the loop that writes the observation too, but runs
    it there as an inner loop for every element written; in benchmarks/world_speed.py that made keys-chests' and
    monster's whole steps about 2.5x slower.
    """
    if planes.shape[0] == 0:
        return jnp.zeros(planes.shape[1:], bool)
    out = planes[0]
    for row in planes[1:]:
        out = out | row
    return out


def cell_code(cells: int, items: jax.Array, bits: jax.Array) -> jax.Array:
    """``[cells]`` int32: for each cell, the OR of ``bits[i]`` over the items ``i`` on it (an item at -1 is nowhere).

    An observation with one 0/1 plane per channel, built as this per-cell code and split by ``channel_bits``: XLA
    computes the code once per cell, where comparing every element of the observation with each item's cell costs
    several comparisons per element (tomato-watering's whole step: 1.3x faster). A bitwise-OR reduction, not a
    chain of ``|``, so that it stays one computed array the observation reads.
    """
    hits = jnp.where(jnp.arange(cells, dtype=jnp.int32)[:, None] == items[None, :], bits[None, :], 0)
    return jax.lax.reduce(hits, jnp.int32(0), jax.lax.bitwise_or, (1,))


def channel_bits(code: jax.Array, channels: int) -> jax.Array:
    """``[cells, channels]`` int32 0/1 planes: channel ``c`` is bit ``c`` of each cell's code. Keep the
    ``[H * W, C]`` shape until the final reshape: summed over a batch as ``[B, H * W, C]`` it is one fast reduction,
    where a fusion laying out ``[B, H * W * C]`` itself was 3-20x slower."""
    return (code[:, None] >> jnp.arange(channels, dtype=jnp.int32)[None, :]) & 1


def plane(pos: jax.Array, shape: tuple[int, int], on: jax.Array | bool = True) -> jax.Array:
    """A boolean plane with one cell set (or none when ``on`` is false)."""
    return ((jnp.arange(shape[0] * shape[1]) == pos) & on).reshape(shape)


def marks(cells: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """``[k, H * W]`` flat boolean planes, plane ``i`` with the one cell ``cells[i]`` set (none where negative).

    ``marks(jnp.stack([a, jnp.where(on, b, -1)]), shape)`` holds ``plane(a, shape)`` and ``plane(b, shape, on)``
    (flattened), built with one broadcast comparison.
    """
    cells = jnp.asarray(cells, jnp.int32)
    return cells[:, None] == jnp.arange(shape[0] * shape[1], dtype=jnp.int32)[None, :]


def channels_last(planes: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """``[C, H * W]`` flat planes as an ``[H, W, C]`` observation: ``jnp.stack`` of the planes on the last axis.

    Building flat planes on a leading axis and transposing once at the end, rather than stacking ``[H, W]`` planes
    on the last axis, lets XLA on CPU compute each plane as a contiguous run instead of choosing the source plane
    element by element; in benchmarks/world_speed.py (4,096 envs, 1 core) it made coinrun's observation about 2.5x
    cheaper to build and consume, the whole step about 2x faster.
    """
    channels = planes.shape[0]
    return planes.reshape(channels, -1).T.reshape(shape + (channels,))


def absorbing(state, moved, ended: jax.Array):
    """``moved``, or ``state`` unchanged when the episode had already ended: terminal states absorb every action."""
    return jax.tree.map(lambda old, new: jnp.where(ended, old, new), state, moved)


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
